"""``python -m service.ingest``: the Redis stream reader as its own process.

Waits for the database, migrates (unless EMO_MIGRATE_ON_START=false), then reads until SIGINT
or SIGTERM. With EMO_INGEST_METRICS_PORT set it serves its own Prometheus metrics there.
"""

from __future__ import annotations

import logging
import signal
import threading

from prometheus_client import start_http_server

from service.context import build_context
from service.ingest.runner import make_reader
from service.settings import ServiceSettings
from service.store.db import migrate, wait_for_db

logger = logging.getLogger(__name__)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ServiceSettings()
    ctx = build_context(settings)
    wait_for_db(ctx.engine, settings.db_connect_retries, settings.db_retry_interval_s)
    if settings.migrate_on_start:
        migrate(ctx.engine)
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, registry=ctx.metrics.registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logger.info("ingest reading %s as group %s", settings.redis_url, settings.ingest_group)
    make_reader(ctx).run(stop)
    ctx.engine.dispose()


if __name__ == "__main__":
    main()

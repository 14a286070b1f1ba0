"""Run the Redis stream reader: in a thread of the API process, or as its own process."""

from __future__ import annotations

import logging
import threading

from service.context import AppContext
from service.errors import ServiceError
from service.ingest.reader import StreamReader

logger = logging.getLogger(__name__)


def make_reader(ctx: AppContext) -> StreamReader:
    """The stream reader for this process (needs the Redis bus)."""
    if ctx.redis is None:
        raise ServiceError(
            "ingest from the Redis stream needs EMO_BUS=redis; the embedded mode calls "
            "Ingestor.ingest() with FrameMessage objects directly"
        )
    return StreamReader(ctx.redis, ctx.ingestor, ctx.settings, ctx.metrics)


def start_in_thread(ctx: AppContext, stop: threading.Event) -> threading.Thread:
    """Start the reader in a daemon thread that ends when ``stop`` is set."""
    reader = make_reader(ctx)
    thread = threading.Thread(target=_run, args=(reader, stop), name="ingest", daemon=True)
    thread.start()
    return thread


def _run(reader: StreamReader, stop: threading.Event) -> None:
    try:
        reader.run(stop)
    except Exception:
        logger.exception("ingest thread crashed")
        raise

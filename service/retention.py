"""Retention job: delete per-student samples older than N days; class aggregates are kept.

``python -m service.retention [--days N]`` (default EMO_RETENTION_DAYS, 30). Also purges expired
tokens and old login-failure records. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from service.security import purge_login_failures
from service.settings import ServiceSettings
from service.store.db import make_engine, make_session_factory, wait_for_db
from service.store.tables import ApiToken, EmotionSample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionResult:
    cutoff: str
    samples_deleted: int
    tokens_deleted: int
    login_failures_deleted: int


def purge(
    sessions: sessionmaker[Session], days: int, *, now: datetime | None = None
) -> RetentionResult:
    """Delete per-student samples with ``t`` older than ``days`` before ``now``."""
    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    with sessions() as db:
        samples = db.execute(delete(EmotionSample).where(EmotionSample.t < int(cutoff.timestamp())))
        tokens = db.execute(delete(ApiToken).where(ApiToken.expires_at < now))
        failures = purge_login_failures(db, now - timedelta(days=1))
        db.commit()
    result = RetentionResult(
        cutoff=cutoff.isoformat(),
        samples_deleted=int(getattr(samples, "rowcount", 0) or 0),
        tokens_deleted=int(getattr(tokens, "rowcount", 0) or 0),
        login_failures_deleted=failures,
    )
    logger.info("retention: %s", result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.retention", description=__doc__)
    parser.add_argument("--days", type=int, default=None, help="default: EMO_RETENTION_DAYS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    settings = ServiceSettings()
    days = args.days if args.days is not None else settings.retention_days
    if days < 1:
        parser.error(f"--days must be >= 1, got {days}")
    engine = make_engine(settings)
    wait_for_db(engine, settings.db_connect_retries, settings.db_retry_interval_s)
    start = time.perf_counter()
    result = purge(make_session_factory(engine), days)
    engine.dispose()
    out = {**asdict(result), "seconds": round(time.perf_counter() - start, 3)}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

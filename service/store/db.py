"""Engine and session factory; the start-up step that waits for the database and migrates."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import UnavailableError
from service.settings import ServiceSettings

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


def make_engine(settings: ServiceSettings) -> Engine:
    """A pooled engine; SQLite gets foreign keys on and cross-thread use allowed."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def wait_for_db(engine: Engine, retries: int, interval_s: float) -> None:
    """Ping the database until it answers; raise UnavailableError after ``retries`` tries."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            if attempt > 1:
                logger.info("database answered after %d attempts", attempt)
            return
        except OperationalError as exc:
            last = exc
            logger.warning("database not ready (attempt %d/%d): %s", attempt, retries, exc)
            time.sleep(interval_s)
    raise UnavailableError(
        f"database {_safe(engine.url)} did not answer after {retries} attempts: {last}"
    )


def alembic_config(url: str | URL) -> Config:
    """Alembic config for this repository's migrations, pointed at ``url``."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = str(url) if isinstance(url, str) else url.render_as_string(False)
    return cfg


#: pg_advisory_lock key: replicas starting together migrate one after the other.
MIGRATION_LOCK = 0x656D6F6D  # "emom"


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (serialised across processes on Postgres)."""
    logger.info("migrating %s to %s", _safe(engine.url), revision)
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema to ``revision``."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    cfg = alembic_config(engine.url)
    if engine.dialect.name != "postgresql":
        action(cfg)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        conn.commit()
        try:
            cfg.attributes["connection"] = conn
            action(cfg)
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)

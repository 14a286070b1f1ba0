"""Alembic: upgrade -> downgrade -> upgrade on a real Postgres database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, inspect

from service.settings import ServiceSettings
from service.store.db import downgrade, migrate
from service.store.tables import Base
from tests.conftest import PG_ADMIN_URL


@pytest.fixture
def scratch_engine(pg_url: str) -> Iterator[Engine]:
    name = f"emo_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(ServiceSettings(database_url=url).database_url)
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(scratch_engine: Engine) -> None:
    expected = set(Base.metadata.tables)
    migrate(scratch_engine)
    assert _tables(scratch_engine) == expected
    downgrade(scratch_engine, "base")
    assert _tables(scratch_engine) == set()
    migrate(scratch_engine)
    assert _tables(scratch_engine) == expected
    columns = {c["name"] for c in inspect(scratch_engine).get_columns("emotion_samples")}
    assert {"session_id", "student_id", "t", "focus", "dominant"} <= columns


def test_sqlite_upgrade_and_downgrade(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'emo.db'}")
    migrate(engine)
    assert _tables(engine) == set(Base.metadata.tables)
    downgrade(engine, "base")
    assert _tables(engine) == set()
    engine.dispose()

"""Fixtures shared by every test package: real Postgres, real Redis, the shared data.

Services: tests that need Postgres or Redis skip with a clear reason when they are not
answering, unless ``EMO_REQUIRE_SERVICES=1`` (set by .ci/run), in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "EMO_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE_URL = os.environ.get("EMO_TEST_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_TEST_DB = int(os.environ.get("EMO_TEST_REDIS_DB", "9"))
DATA_DIR = Path(os.environ.get("EMO_DATA_DIR", ROOT.parent / "shared" / "data"))


def _require() -> bool:
    return os.environ.get("EMO_REQUIRE_SERVICES", "") == "1"


def _unavailable(what: str, exc: Exception) -> None:
    msg = f"{what} is not answering ({exc}); start it or unset EMO_REQUIRE_SERVICES"
    if _require():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@contextmanager
def _database() -> Iterator[str]:
    """Create a uniquely named Postgres database, yield its URL, drop it afterwards."""
    name = f"emo_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable(f"Postgres at {PG_ADMIN_URL}", exc)
        raise  # unreachable: skip/fail raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test run (tests roll back what they write)."""
    with _database() as url:
        yield url


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    """A Postgres database of one test's own, for tests whose processes commit real data."""
    with _database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own for one test: flushed before and after it."""
    url = f"{REDIS_BASE_URL}/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis at {REDIS_BASE_URL}", exc)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or EMO_DATA_DIR); tests that need it skip with a clear reason."""
    if not (DATA_DIR / "learning-emotions" / "manifest.csv").is_file():
        pytest.skip(f"shared data not found at {DATA_DIR} (set EMO_DATA_DIR to its folder)")
    return DATA_DIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA (checked without importing torch when none is marked)."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if not has_cuda:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs CUDA (no GPU on this machine)"))

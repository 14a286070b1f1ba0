"""Retention: per-student samples older than N days go, class aggregates stay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.ingest.writer import Ingestor
from service.metrics import Metrics
from service.retention import purge
from service.store.tables import ClassAggregateRow, EmotionSample
from tests.service.conftest import ROOT_DIR, World, frame, start_session

DAY = 86400


def test_purge_keeps_aggregates(db_factory: sessionmaker[Session], world: World) -> None:
    now = time.time()
    sid = start_session(
        db_factory, world.room_a, world.camera_a, "per_student", started_at=now - 40 * DAY
    )
    old = [
        frame(world.camera_a, now - 40 * DAY + i, ["s01", "s02"], session_id=sid, seq=i)
        for i in range(5)
    ]
    new = [
        frame(world.camera_a, now - 1 * DAY + i, ["s01"], session_id=sid, seq=100 + i)
        for i in range(3)
    ]
    Ingestor(db_factory, None, Metrics(), 5).ingest(old + new)
    result = purge(db_factory, 30, now=datetime.fromtimestamp(now, UTC))
    assert result.samples_deleted == 10
    with db_factory() as db:
        samples = db.scalar(select(func.count()).select_from(EmotionSample))
        aggregates = db.scalar(select(func.count()).select_from(ClassAggregateRow))
    assert samples == 3 and aggregates == 8


def test_cli_entry_points_on_sqlite(tmp_path: Path) -> None:
    env = {
        "EMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "EMO_BUS": "memory",
        "PATH": "/usr/bin:/bin",
    }
    migrated = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "service.migrate"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    create = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "service.users", "create-admin", "--username", "boss"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert create.returncode == 0, create.stderr
    out = json.loads(create.stdout)
    assert out["created"] is True and len(out["password"]) >= 8
    again = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "service.users", "create-admin", "--username", "boss"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and json.loads(again.stdout)["created"] is False
    retention = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "service.retention", "--days", "7"],
        cwd=ROOT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert retention.returncode == 0, retention.stderr
    assert json.loads(retention.stdout)["samples_deleted"] == 0

"""Service fixtures: migrated Postgres, per-test transaction rollback, an app on it, users.

Every test's database work happens inside one outer transaction that is rolled back at the
end (sessions commit to savepoints), so tests share no state. Tests that need committed data
across processes (live servers) use ``committed_world`` and clean up after themselves.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from contract import ClassAggregate, FaceScore, FrameMessage, Probs
from service.main import create_app
from service.security import hash_password, issue_token
from service.settings import ServiceSettings
from service.store.db import migrate
from service.store.tables import (
    Camera,
    Classroom,
    ClassroomGrant,
    ClassSession,
    SessionCamera,
    Student,
    User,
)

ROOT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """The test run's Postgres database, migrated to head once."""
    engine = create_engine(ServiceSettings(database_url=pg_url).database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db_factory(pg_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions bound to one connection whose outer transaction is rolled back after the test."""
    conn = pg_engine.connect()
    outer = conn.begin()
    factory = sessionmaker(
        bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield factory
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> ServiceSettings:
    return ServiceSettings(
        database_url=pg_url,
        redis_url=redis_url,
        migrate_on_start=False,
        live_channel=f"emo:live:test:{uuid.uuid4().hex}",
        ingest_consumer="test-consumer",
    )


@pytest.fixture
def client(settings: ServiceSettings, db_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(settings, sessions=db_factory)
    with TestClient(app) as test_client:
        yield test_client


@dataclass
class World:
    """Two classrooms (A: per_student, B: aggregate_only), users of each role, tokens."""

    room_a: int
    room_b: int
    camera_a: str
    camera_b: str
    students_a: dict[str, int]
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@functools.cache
def _hashed(password: str) -> str:
    """scrypt is slow on purpose; tests reuse one hash per password."""
    return hash_password(password)


def build_world(factory: sessionmaker[Session], tag: str = "") -> World:
    with factory() as db:
        room_a = Classroom(name=f"Room A{tag}", privacy_mode="per_student")
        room_b = Classroom(name=f"Room B{tag}", privacy_mode="aggregate_only")
        db.add_all([room_a, room_b])
        db.flush()
        cam_a = Camera(
            id=f"cam-a{tag}",
            classroom_id=room_a.id,
            name="front",
            source_url="rtsp://u:pw@10.0.0.5:554/s",
        )
        cam_b = Camera(
            id=f"cam-b{tag}", classroom_id=room_b.id, name="front", source_url="/videos/b.mp4"
        )
        db.add_all([cam_a, cam_b])
        students = [Student(classroom_id=room_a.id, code=f"s{i:02d}") for i in range(1, 7)]
        students.append(Student(classroom_id=room_a.id, code="s99", opted_out=True))
        db.add_all(students)
        db.flush()
        world = World(room_a.id, room_b.id, cam_a.id, cam_b.id, {s.code: s.id for s in students})
        grants = {
            "admin": ("admin", None, False),
            "teacher_a": ("teacher", room_a.id, True),
            "teacher_b": ("teacher", room_b.id, True),
            "analyst": ("analyst", None, False),
            "analyst_granted": ("analyst", room_a.id, True),
        }
        for name, (role, room, per_student) in grants.items():
            user = User(
                username=f"{name}{tag}", password_hash=_hashed("password-" + name), role=role
            )
            db.add(user)
            db.flush()
            if room is not None:
                db.add(ClassroomGrant(user_id=user.id, classroom_id=room, per_student=per_student))
            world.tokens[name], _ = issue_token(db, user, 1.0)
            world.user_ids[name] = user.id
        db.commit()
    return world


@pytest.fixture
def world(db_factory: sessionmaker[Session]) -> World:
    return build_world(db_factory)


def start_session(
    factory: sessionmaker[Session],
    classroom_id: int,
    camera_id: str,
    mode: str,
    sid: str | None = None,
    started_at: float | None = None,
) -> str:
    """A running session row (what POST /sessions stores), for ingest tests."""
    session_id = sid or uuid.uuid4().hex
    started = datetime.fromtimestamp(started_at, UTC) if started_at else datetime.now(UTC)
    with factory() as db:
        db.add(
            ClassSession(
                id=session_id,
                classroom_id=classroom_id,
                title="t",
                privacy_mode=mode,
                started_at=started,
            )
        )
        db.flush()
        db.add(SessionCamera(session_id=session_id, camera_id=camera_id))
        db.commit()
    return session_id


def probs(focus: float) -> Probs:
    rest = (1.0 - focus) / 5
    return Probs(joy=rest, focus=focus, thinking=rest, boredom=rest, confusion=rest, drowsy=rest)


def frame(
    camera_id: str,
    ts: datetime | float,
    students: list[str | None],
    *,
    session_id: str | None = None,
    seq: int = 0,
    focus: float = 0.6,
) -> FrameMessage:
    """A worker message with one face per entry of ``students`` (None: unseated face)."""
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    faces = [
        FaceScore(
            track_id=i,
            student=code,
            box=(0, 0, 10, 10),
            probs=probs(focus),
            smoothed=probs(focus),
            det_prob=0.99,
        )
        for i, code in enumerate(students)
    ]
    mean = probs(focus) if faces else None
    return FrameMessage(
        camera_id=camera_id,
        session_id=session_id,
        worker_id="w1",
        seq=seq,
        ts=when,
        t=float(seq),
        faces=faces,
        aggregate=ClassAggregate(face_count=len(faces), mean=mean),
    )

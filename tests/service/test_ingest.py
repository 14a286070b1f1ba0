"""Ingest: exactly-once under redelivery, privacy at ingest, the Redis consumer group."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.ingest.reader import StreamReader
from service.ingest.writer import Ingestor
from service.metrics import Metrics
from service.settings import ServiceSettings
from service.store.db import make_session_factory
from service.store.tables import ClassAggregateRow, EmotionSample
from tests.service.conftest import World, frame, start_session

T0 = 1_790_000_000.0


def _counts(factory: sessionmaker[Session], session_id: str) -> tuple[int, int]:
    with factory() as db:
        samples = db.scalar(
            select(func.count())
            .select_from(EmotionSample)
            .where(EmotionSample.session_id == session_id)
        )
        aggs = db.scalar(
            select(func.count())
            .select_from(ClassAggregateRow)
            .where(ClassAggregateRow.session_id == session_id)
        )
    return int(samples or 0), int(aggs or 0)


def test_redelivered_messages_insert_nothing(
    db_factory: sessionmaker[Session], world: World
) -> None:
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    metrics = Metrics()
    ingestor = Ingestor(db_factory, None, metrics, k_anonymity=5)
    msgs = [
        frame(world.camera_a, T0 + i / 2, ["s01", "s02", "s03"], session_id=sid, seq=i)
        for i in range(10)
    ]
    first = ingestor.ingest(msgs)
    # 10 frames at 2 fps = 5 seconds: 3 students x 5 s samples, 5 aggregates
    assert (first.frames, first.samples, first.aggregates) == (10, 15, 5)
    again = ingestor.ingest(msgs + msgs)
    assert (again.samples, again.aggregates) == (0, 0)
    assert _counts(db_factory, sid) == (15, 5)
    assert "emo_samples_ingested_total 15.0" in metrics.render().decode()


def test_privacy_rules_at_ingest(db_factory: sessionmaker[Session], world: World) -> None:
    ingestor = Ingestor(db_factory, None, Metrics(), k_anonymity=5)
    per_student = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    result = ingestor.ingest(
        [frame(world.camera_a, T0, ["s01", "s99", None, "ghost"], session_id=per_student)]
    )
    assert result.samples == 1  # s01 only
    assert result.dropped == {"opted_out": 1, "unseated": 1, "unknown_student": 1}

    aggregate_only = start_session(db_factory, world.room_b, world.camera_b, "aggregate_only")
    few = frame(world.camera_b, T0, ["a", "b"], session_id=aggregate_only)
    many = frame(
        world.camera_b, T0 + 1, ["a", "b", "c", "d", "e"], session_id=aggregate_only, seq=1
    )
    result = ingestor.ingest([few, many])
    assert (result.samples, result.aggregates) == (0, 2)
    with db_factory() as db:
        rows = db.scalars(
            select(ClassAggregateRow)
            .where(ClassAggregateRow.session_id == aggregate_only)
            .order_by(ClassAggregateRow.t)
        ).all()
    assert rows[0].face_count == 2 and rows[0].focus is None  # fewer than k faces: hidden
    assert rows[1].face_count == 5 and rows[1].focus is not None


def test_off_sessions_and_unknown_cameras_are_dropped(
    db_factory: sessionmaker[Session], world: World
) -> None:
    ingestor = Ingestor(db_factory, None, Metrics(), k_anonymity=5)
    off = start_session(db_factory, world.room_a, world.camera_a, "off")
    other = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    result = ingestor.ingest(
        [
            frame(world.camera_a, T0, ["s01"], session_id=off),
            frame("cam-unknown", T0, ["s01"]),
            frame(world.camera_b, T0, ["s01"], session_id=other),
        ]
    )
    assert result.frames == 0 and result.samples == 0 and result.aggregates == 0
    assert result.dropped == {"session_off": 1, "no_session": 1, "camera_not_in_session": 1}


def test_message_without_session_id_uses_the_cameras_running_session(
    db_factory: sessionmaker[Session], world: World
) -> None:
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    result = Ingestor(db_factory, None, Metrics(), 5).ingest([frame(world.camera_a, T0, ["s01"])])
    assert result.samples == 1
    assert _counts(db_factory, sid) == (1, 1)


def _reader(
    client: redis.Redis, factory: sessionmaker[Session], stream: str, consumer: str
) -> StreamReader:
    settings = ServiceSettings(
        ingest_consumer=consumer, ingest_claim_idle_ms=0, ingest_block_ms=50, ingest_batch=50
    )
    ingestor = Ingestor(factory, None, Metrics(), 5)
    return StreamReader(client, ingestor, settings, Metrics(), stream=stream)


def test_consumer_group_exactly_once_under_redelivery(
    db_factory: sessionmaker[Session], world: World, redis_url: str
) -> None:
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    client = redis.Redis.from_url(redis_url)
    stream = f"emo:frames:test:{uuid.uuid4().hex}"
    for i in range(20):
        msg = frame(world.camera_a, T0 + i, ["s01", "s02"], session_id=sid, seq=i)
        client.xadd(stream, {"data": msg.model_dump_json()})
    client.xadd(stream, {"data": b"{not json"})

    crashed = _reader(client, db_factory, stream, "crashed")
    crashed.ensure_group()
    # the crashed consumer read everything but died before storing/acknowledging
    client.xreadgroup("emo-ingest", "crashed", {stream: ">"}, count=100)
    assert client.xpending(stream, "emo-ingest")["pending"] == 21

    survivor = _reader(client, db_factory, stream, "survivor")
    assert survivor.claim_pending() == 21  # XAUTOCLAIM on start
    assert client.xpending(stream, "emo-ingest")["pending"] == 0
    assert _counts(db_factory, sid) == (40, 20)
    dead: Any = client.xrange("emo:frames:dead")
    assert len(dead) == 1 and b"invalid FrameMessage" in dead[0][1][b"error"]

    # redelivery of already-stored messages (a worker retrying its XADD) stores nothing new
    for i in range(20):
        msg = frame(world.camera_a, T0 + i, ["s01", "s02"], session_id=sid, seq=i)
        client.xadd(stream, {"data": msg.model_dump_json()})
    stop = threading.Event()
    thread = threading.Thread(target=survivor.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and client.xpending(stream, "emo-ingest")["pending"] > 0:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    info = client.xinfo_groups(stream)[0]
    assert info["pending"] == 0 and info["lag"] == 0
    assert _counts(db_factory, sid) == (40, 20)


def test_reader_retries_own_pending_after_a_failed_batch(
    db_factory: sessionmaker[Session], world: World, redis_url: str
) -> None:
    """Entries read but not acknowledged (DB failure) are re-read from the pending list."""
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    client = redis.Redis.from_url(redis_url)
    stream = f"emo:frames:test:{uuid.uuid4().hex}"
    reader = _reader(client, db_factory, stream, "c1")
    reader.ensure_group()
    reader.poll_once()  # empty backlog -> switches to new entries
    client.xadd(
        stream, {"data": frame(world.camera_a, T0, ["s01"], session_id=sid).model_dump_json()}
    )
    client.xreadgroup("emo-ingest", "c1", {stream: ">"}, count=10)  # read, "crashed" before store
    restarted = _reader(client, db_factory, stream, "c1")
    result = restarted.poll_once()  # same consumer name: its own pending list first
    assert result is not None and result.samples == 1
    assert client.xpending(stream, "emo-ingest")["pending"] == 0


def test_ingest_inside_the_api_process(
    settings: ServiceSettings, db_factory: sessionmaker[Session], world: World, redis_url: str
) -> None:
    """EMO_INGEST_IN_API=true: the API's own thread reads the stream; /metrics counts it."""
    from fastapi.testclient import TestClient

    from contract.keys import FRAMES_STREAM
    from service.main import create_app

    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    app = create_app(settings.model_copy(update={"ingest_in_api": True}), sessions=db_factory)
    client = redis.Redis.from_url(redis_url)
    with TestClient(app) as api:
        msg = frame(world.camera_a, T0, ["s01", "s02"], session_id=sid)
        client.xadd(FRAMES_STREAM, {"data": msg.model_dump_json()})
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and "emo_samples_ingested_total 2.0" not in text:
            time.sleep(0.1)
            text = api.get("/metrics").text
        assert "emo_samples_ingested_total 2.0" in text
    assert _counts(db_factory, sid) == (2, 1)


@pytest.mark.faults
def test_database_outage_acknowledges_nothing(
    db_factory: sessionmaker[Session], world: World, redis_url: str
) -> None:
    """A batch that cannot be committed stays pending and is stored once the DB is back."""
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    client = redis.Redis.from_url(redis_url)
    stream = f"emo:frames:test:{uuid.uuid4().hex}"
    down = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 1}
    )
    settings = ServiceSettings(ingest_consumer="c1", ingest_block_ms=50)
    broken = StreamReader(
        client,
        Ingestor(make_session_factory(down), None, Metrics(), 5),
        settings,
        Metrics(),
        stream,
    )
    broken.ensure_group()
    broken.poll_once()  # empty backlog
    msg = frame(world.camera_a, T0, ["s01", "s02"], session_id=sid)
    client.xadd(stream, {"data": msg.model_dump_json()})
    with pytest.raises(OperationalError):
        broken.poll_once()
    assert client.xpending(stream, "emo-ingest")["pending"] == 1
    down.dispose()
    healthy = _reader(client, db_factory, stream, "c1")  # the same consumer, restarted
    result = healthy.poll_once()
    assert result is not None and result.samples == 2
    assert client.xpending(stream, "emo-ingest")["pending"] == 0

"""Live: WebSocket and SSE delivery through Redis pub/sub, privacy per role, two replicas."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect as ws_connect

from service.ingest.writer import Ingestor
from service.live.bus import LiveHub, RedisBus
from service.main import create_app
from service.metrics import Metrics
from service.settings import ServiceSettings
from service.store.db import make_session_factory
from service.store.tables import AuditEntry, Classroom, User
from tests.net import free_port
from tests.service.conftest import World, build_world, frame, start_session

API = "/api/v1"


def _publisher(factory: sessionmaker[Session], settings: ServiceSettings) -> Ingestor:
    """A separate ingest (as in `python -m service.ingest`) publishing on the same channel."""
    bus = RedisBus(LiveHub(8, Metrics()), settings.redis_url, settings.live_channel)
    return Ingestor(factory, bus, Metrics(), settings.k_anonymity)


def test_websocket_delivers_class_and_student_scores(
    client: TestClient, world: World, db_factory: sessionmaker[Session], settings: ServiceSettings
) -> None:
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    ingest = _publisher(db_factory, settings)
    url = f"{API}/sessions/{sid}/live?token={world.tokens['teacher_a']}"
    with client.websocket_connect(url) as ws:
        hello = ws.receive_json()
        assert hello == {
            "type": "hello",
            "session_id": sid,
            "privacy_mode": "per_student",
            "per_student": True,
        }
        ingest.ingest([frame(world.camera_a, time.time(), ["s01", "s99"], session_id=sid)])
        msg = ws.receive_json()
    assert msg["type"] == "frame" and msg["face_count"] == 2
    assert msg["class"]["focus"] == pytest.approx(0.6)
    assert list(msg["students"]) == ["s01"]  # opted-out s99 is never published
    with db_factory() as db:
        actions = db.execute(select(AuditEntry.username, AuditEntry.action)).all()
    assert ("teacher_a", "live") in [tuple(row) for row in actions]


def test_websocket_token_as_subprotocol(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    """Browsers can pass the token as a subprotocol, keeping it out of URLs and logs."""
    sid = start_session(db_factory, world.room_b, world.camera_b, "aggregate_only")
    url = f"{API}/sessions/{sid}/live"
    with client.websocket_connect(url, subprotocols=["bearer", world.tokens["teacher_b"]]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        hello = ws.receive_json()
    assert hello["privacy_mode"] == "aggregate_only" and hello["per_student"] is False


def test_websocket_refusals_carry_a_reason(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    cases = [
        (f"{API}/sessions/{sid}/live", 4401),
        (f"{API}/sessions/{sid}/live?token={world.tokens['teacher_b']}", 4403),
        (f"{API}/sessions/{sid}/live?token={world.tokens['analyst']}", 4403),
        (f"{API}/sessions/nope/live?token={world.tokens['admin']}", 4404),
    ]
    for url, code in cases:
        with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == code, url
        assert info.value.reason


class Replica:
    """One API process (uvicorn in a thread) on a loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Replica:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def committed(
    pg_engine, settings: ServiceSettings
) -> Iterator[tuple[World, sessionmaker[Session]]]:
    """Committed data (several processes read it); deleted afterwards."""
    factory = make_session_factory(pg_engine)
    tag = f"-{time.monotonic_ns()}"
    world = build_world(factory, tag)
    try:
        yield world, factory
    finally:
        with factory() as db:
            db.execute(delete(Classroom).where(Classroom.id.in_([world.room_a, world.room_b])))
            db.execute(delete(User).where(User.id.in_(world.user_ids.values())))
            db.commit()


def _sse_frames(
    port: int, sid: str, token: str, out: list[dict[str, object]], ready: threading.Event
) -> None:
    url = f"http://127.0.0.1:{port}{API}/sessions/{sid}/events"
    with (
        httpx.Client(timeout=15) as http,
        http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                if event == "hello":
                    ready.set()
                else:
                    out.append(json.loads(line[6:]))
                    return


def test_two_replicas_both_serve_live_over_sse_and_websocket(
    committed: tuple[World, sessionmaker[Session]], settings: ServiceSettings
) -> None:
    world, factory = committed
    sid = start_session(factory, world.room_a, world.camera_a, "per_student")
    ingest = _publisher(factory, settings)
    with Replica(create_app(settings)) as one, Replica(create_app(settings)) as two:
        sse: list[dict[str, object]] = []
        ready = threading.Event()
        # analysts have no live access: the SSE endpoint answers 403 before streaming
        r = httpx.get(
            f"http://127.0.0.1:{one.port}{API}/sessions/{sid}/events",
            headers={"Authorization": f"Bearer {world.tokens['analyst']}"},
        )
        assert r.status_code == 403
        reader = threading.Thread(
            target=_sse_frames, args=(one.port, sid, world.tokens["admin"], sse, ready)
        )
        reader.start()
        assert ready.wait(10)
        ws_url = (
            f"ws://127.0.0.1:{two.port}{API}/sessions/{sid}/live?token={world.tokens['teacher_a']}"
        )
        with ws_connect(ws_url, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            ingest.ingest([frame(world.camera_a, time.time(), ["s01", "s02"], session_id=sid)])
            ws_msg = json.loads(ws.recv(timeout=10))
        reader.join(10)
    assert ws_msg["face_count"] == 2 and set(ws_msg["students"]) == {"s01", "s02"}
    assert len(sse) == 1 and sse[0]["face_count"] == 2 and "students" in sse[0]

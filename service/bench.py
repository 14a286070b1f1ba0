"""``python -m service.bench [--quick]``: ingest, timeline and live fan-out, printed as JSON.

Loopback only and bounded. It creates a scratch Postgres database (dropped afterwards), starts
the API as a subprocess (``python -m service``), and measures:

- ``ingest_samples_per_s``: per-student samples stored per second by the Redis-stream consumer
  (XREADGROUP -> one transaction per batch -> XACK) for a one-hour, 30-student session;
- ``timeline_p95_ms``: that session's class timeline at 10 s buckets, 50 concurrent
  dashboards (each its own user, token and keep-alive connection) each asking once a second;
  ``timeline_closed_loop_*``: the same 50 sending back-to-back requests; with the full run,
  ``timeline_nocache_*``: both again with the history cache off (``EMO_HISTORY_CACHE_S=0``);
- ``live_p95_ms``: 100 WebSocket clients on the session, delay from the Redis PUBLISH of an
  event (stamped by ingest) to its arrival at each client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import psycopg
import redis
import websockets
from sqlalchemy.orm import Session, sessionmaker

from contract import ClassAggregate, FaceScore, FrameMessage, Probs
from service.ingest.reader import StreamReader
from service.ingest.writer import Ingestor
from service.live.bus import LiveHub, RedisBus
from service.metrics import Metrics
from service.security import hash_password, issue_token
from service.settings import ServiceSettings
from service.store.db import make_engine, make_session_factory, migrate
from service.store.tables import Camera, Classroom, ClassSession, SessionCamera, Student, User

logger = logging.getLogger(__name__)
T0 = 1_789_999_200  # a whole hour, UTC


@dataclass(frozen=True)
class BenchConfig:
    seconds: int  # length of the recorded session
    students: int
    timeline_clients: int
    timeline_seconds: int  # open loop: each client sends one request per second this long
    timeline_requests: int  # closed loop: back-to-back requests per client
    baseline: bool  # also measure the timeline with the result cache off
    live_clients: int
    live_events: int


QUICK = BenchConfig(3600, 30, 50, 6, 2, False, 100, 10)
FULL = BenchConfig(3600, 30, 50, 20, 10, True, 100, 40)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh Postgres database, dropped afterwards."""
    name = f"emo_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(factory: sessionmaker[Session], students: int, dashboards: int) -> tuple[str, list[str]]:
    """Classroom, camera, students, a running per-student session, and one token for each of
    ``dashboards`` users (distinct tokens: no client rides on another's cached page)."""
    with factory() as db:
        room = Classroom(name="bench", privacy_mode="per_student")
        db.add(room)
        db.flush()
        db.add(Camera(id="bench-cam", classroom_id=room.id, name="c", source_url="/dev/null"))
        db.add_all(Student(classroom_id=room.id, code=f"s{i:02d}") for i in range(students))
        sess = ClassSession(
            id="bench-session",
            classroom_id=room.id,
            privacy_mode="per_student",
            started_at=datetime.fromtimestamp(T0, UTC),
        )
        db.add(sess)
        db.flush()
        db.add(SessionCamera(session_id=sess.id, camera_id="bench-cam"))
        password = hash_password("bench-pass")
        users = [
            User(username=f"bench-user-{i:02d}", password_hash=password, role="admin")
            for i in range(dashboards)
        ]
        db.add_all(users)
        db.flush()
        tokens = [issue_token(db, user, 2.0)[0] for user in users]
        db.commit()
    return sess.id, tokens


def make_frame(second: int, students: int, seq: int, session_id: str) -> FrameMessage:
    """One analysed frame with ``students`` faces, deterministic varied scores."""
    faces = []
    for i in range(students):
        focus = 0.2 + 0.6 * (((second // 60) + i) % 7) / 7
        rest = (1 - focus) / 5
        probs = Probs(
            joy=rest, focus=focus, thinking=rest, boredom=rest, confusion=rest, drowsy=rest
        )
        faces.append(
            FaceScore(
                track_id=i,
                student=f"s{i:02d}",
                box=(0, 0, 1, 1),
                probs=probs,
                smoothed=probs,
                det_prob=0.99,
            )
        )
    return FrameMessage(
        camera_id="bench-cam",
        session_id=session_id,
        worker_id="bench",
        seq=seq,
        ts=datetime.fromtimestamp(T0 + second, UTC),
        t=float(second),
        faces=faces,
        aggregate=ClassAggregate(face_count=students, mean=faces[0].smoothed if faces else None),
    )


def bench_ingest(
    settings: ServiceSettings, factory: sessionmaker[Session], cfg: BenchConfig, session_id: str
) -> dict[str, float]:
    client = redis.Redis.from_url(settings.redis_url)
    stream = f"emo:bench:{uuid.uuid4().hex}"
    pipe = client.pipeline(transaction=False)
    for second in range(cfg.seconds):
        msg = make_frame(second, cfg.students, second, session_id)
        pipe.xadd(stream, {"data": msg.model_dump_json()})
    pipe.execute()
    metrics = Metrics()
    reader = StreamReader(client, Ingestor(factory, None, metrics, 5), settings, metrics, stream)
    reader.ensure_group()
    reader.poll_once()  # empty own backlog
    samples = 0
    start = time.perf_counter()
    while True:
        result = reader.poll_once()
        if result is None:
            break
        samples += result.samples
    elapsed = time.perf_counter() - start
    client.delete(stream)
    client.close()
    return {
        "ingest_samples_per_s": round(samples / elapsed, 1),
        "ingest_samples": samples,
        "ingest_seconds": round(elapsed, 3),
    }


class KeepAliveClient:
    """One dashboard's HTTP/1.1 keep-alive connection, as lean as a load generator can be.

    httpx's connection pool spent about 10 ms of CPU per request with 50 concurrent clients
    (measured: client process 99 % of a core, API 21 %, at ~100 requests/s), so on a 2-core
    machine it measured the load generator rather than the API. This client writes a GET and
    reads the status line, headers and a ``Content-Length`` body on one connection.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self._head}\r\n"
        self._writer.write(request.encode())
        status_line, *header_lines = (
            (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        )
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                self._writer = None
        body = await self._reader.readexactly(length)
        return int(status_line.split()[1]), body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


async def _timed_get(client: KeepAliveClient, path: str, out: list[float]) -> None:
    start = time.perf_counter()
    status, body = await client.get(path)
    out.append((time.perf_counter() - start) * 1000)
    if status != 200 or b'"items":[{' not in body:
        raise RuntimeError(f"timeline answered {status}: {body[:200]!r}")


async def _closed_loop(client: KeepAliveClient, path: str, n: int, out: list[float]) -> None:
    for _ in range(n):
        await _timed_get(client, path, out)


async def _open_loop(
    client: KeepAliveClient, path: str, seconds: float, phase: float, out: list[float]
) -> None:
    """One dashboard: a request every second on its own connection (no pipelining)."""
    await asyncio.sleep(phase)
    for _ in range(int(seconds)):
        tick = time.perf_counter()
        await _timed_get(client, path, out)
        await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))


async def bench_timeline(
    base: str, tokens: list[str], cfg: BenchConfig, session_id: str, prefix: str = "timeline"
) -> dict[str, float]:
    """Open loop: 50 clients x 1 request/s (the dashboard model); closed loop: back-to-back."""
    end = datetime.fromtimestamp(T0 + cfg.seconds, UTC).isoformat().replace("+00:00", "Z")
    path = f"/api/v1/sessions/{session_id}/timeline?bucket=10s&end={end}"
    host, port = base.removeprefix("http://").split(":")
    clients = [
        KeepAliveClient(host, int(port), {"Authorization": f"Bearer {token}"})
        for token in tokens[: cfg.timeline_clients]
    ]
    try:
        # warm-up: every client opens its connection and is served once
        await asyncio.gather(*(_timed_get(c, path, []) for c in clients))
        closed_lat: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(
            *(_closed_loop(c, path, cfg.timeline_requests, closed_lat) for c in clients)
        )
        wall = time.perf_counter() - start
        open_lat: list[float] = []
        n = len(clients)
        await asyncio.gather(
            *(
                _open_loop(c, path, cfg.timeline_seconds, i / n, open_lat)
                for i, c in enumerate(clients)
            )
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return {
        f"{prefix}_p95_ms": round(_p95(open_lat), 1),
        f"{prefix}_p50_ms": round(statistics.median(open_lat), 1),
        f"{prefix}_requests": len(open_lat),
        f"{prefix}_closed_loop_p95_ms": round(_p95(closed_lat), 1),
        f"{prefix}_closed_loop_p50_ms": round(statistics.median(closed_lat), 1),
        f"{prefix}_closed_loop_rps": round(len(closed_lat) / wall, 1),
    }


async def _live_client(url: str, expected: int, out: list[float], ready: asyncio.Event) -> None:
    async with websockets.connect(url, open_timeout=30, max_queue=None) as ws:
        json.loads(await ws.recv())  # hello
        ready.set()
        for _ in range(expected):
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            out.append((time.time() - float(event["sent"])) * 1000)


async def bench_live(
    base: str,
    token: str,
    cfg: BenchConfig,
    settings: ServiceSettings,
    factory: sessionmaker[Session],
) -> dict[str, float]:
    live_sid = "bench-live"
    with factory() as db:
        room_id = db.get(ClassSession, "bench-session").classroom_id  # type: ignore[union-attr]
        db.add(ClassSession(id=live_sid, classroom_id=room_id, privacy_mode="per_student"))
        db.flush()
        db.add(SessionCamera(session_id=live_sid, camera_id="bench-cam"))
        db.commit()
    ws_base = base.replace("http://", "ws://")
    url = f"{ws_base}/api/v1/sessions/{live_sid}/live?token={token}"
    latencies: list[float] = []
    readies = [asyncio.Event() for _ in range(cfg.live_clients)]
    tasks = [
        asyncio.create_task(_live_client(url, cfg.live_events, latencies, ev)) for ev in readies
    ]
    await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in readies)), timeout=60)
    bus = RedisBus(LiveHub(1, Metrics()), settings.redis_url, settings.live_channel)
    ingestor = Ingestor(factory, bus, Metrics(), 5)
    now = int(time.time())
    for i in range(cfg.live_events):
        msg = make_frame(i, cfg.students, i, live_sid)
        msg = msg.model_copy(update={"ts": datetime.fromtimestamp(now + i, UTC)})
        await asyncio.to_thread(ingestor.ingest, [msg])
        await asyncio.sleep(0.25)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return {
        "live_p95_ms": round(_p95(latencies), 1),
        "live_p50_ms": round(statistics.median(latencies), 1),
        "live_deliveries": len(latencies),
        "live_clients": cfg.live_clients,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_process(settings: ServiceSettings, **extra_env: str) -> Iterator[str]:
    """``python -m service`` on a free loopback port; yields its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "EMO_DATABASE_URL": settings.database_url,
        "EMO_REDIS_URL": settings.redis_url,
        "EMO_LIVE_CHANNEL": settings.live_channel,
        "EMO_PORT": str(port),
        "EMO_HOST": "127.0.0.1",
        "EMO_MIGRATE_ON_START": "false",
        "EMO_INGEST_IN_API": "false",
        "EMO_DB_POOL_SIZE": "20",
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("API did not become healthy within 60 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(cfg: BenchConfig, admin_url: str, redis_url: str) -> dict[str, object]:
    started = time.perf_counter()
    with scratch_database(admin_url) as db_url:
        settings = ServiceSettings(
            database_url=db_url, redis_url=redis_url, live_channel=f"emo:bench:{uuid.uuid4().hex}"
        )
        engine = make_engine(settings)
        migrate(engine)
        factory = make_session_factory(engine)
        session_id, tokens = seed(factory, cfg.students, cfg.timeline_clients)
        result: dict[str, object] = {**bench_ingest(settings, factory, cfg, session_id)}
        with api_process(settings) as base:
            result.update(asyncio.run(bench_timeline(base, tokens, cfg, session_id)))
            result.update(asyncio.run(bench_live(base, tokens[0], cfg, settings, factory)))
        if cfg.baseline:
            with api_process(settings, EMO_HISTORY_CACHE_S="0") as base:
                result.update(
                    asyncio.run(bench_timeline(base, tokens, cfg, session_id, "timeline_nocache"))
                )
        engine.dispose()
    result["cpu_count"] = os.cpu_count() or 0
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests/events (< 60 s)")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = QUICK if args.quick else FULL
    sys.stdout.write(json.dumps(run(cfg, args.pg_admin_url, args.redis_url)) + "\n")


if __name__ == "__main__":
    main()

"""Two API replicas and two workers on one Redis and one Postgres.

Every message the workers put on the stream is stored exactly once (none twice, none missed),
both replicas serve history and live updates, and each worker analyses its own camera.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from contract import FrameMessage
from contract.keys import FRAMES_STREAM, lease_key
from launcher.democlip import make_demo_clip
from launcher.settings import REPO_ROOT
from tests.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.faults]
ADMIN = ("scale-admin", "scale-out-password-1")


def _env(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMO_")}
    return env | {
        "EMO_DATABASE_URL": pg_url,
        "EMO_REDIS_URL": redis_url,
        "EMO_WORKER_REDIS_URL": redis_url,
        "EMO_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "EMO_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        "EMO_HISTORY_CACHE_S": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.fixture
def cluster(own_pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Migrated DB, two API replicas with ingest, two workers (one camera each at most)."""
    subprocess.run(
        [sys.executable, "-m", "service.migrate"],
        cwd=REPO_ROOT, env=_env(own_pg_url, redis_url), check=True, timeout=120,
    )  # fmt: skip
    ports = [free_port(), free_port()]
    logs = [(tmp_path / f"p{i}.log").open("w") for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=_env(
                own_pg_url, redis_url, EMO_INGEST_IN_API="true", EMO_INGEST_CONSUMER=f"api{i}"
            ),
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i, port in enumerate(ports)
    ] + [
        subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=REPO_ROOT,
            env=_env(
                own_pg_url,
                redis_url,
                EMO_WORKER_WORKER_ID=f"w{i}",
                EMO_WORKER_MAX_CAMERAS="1",
                EMO_WORKER_METRICS_PORT="0",
                EMO_WORKER_THREADS="1",
            ),
            stdout=logs[2 + i],
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def _login(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            resp = client.post(
                "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
            )
            if resp.status_code == 200:
                client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "API replica never accepted the admin login"
        time.sleep(0.5)


def _start_session(client: httpx.Client, clip: Path, seats: dict[str, list]) -> str:
    room = client.post("/api/v1/classrooms", json={"name": "R1", "privacy_mode": "per_student"})
    room_id = room.json()["id"]
    for code in seats:
        client.post("/api/v1/students", json={"classroom_id": room_id, "code": code})
    for cam in ("cam-a", "cam-b"):
        body = {"id": cam, "classroom_id": room_id, "name": cam, "source_url": str(clip)}
        assert client.post("/api/v1/cameras", json=body | {"fps": 2.0}).status_code == 201
        seat_list = [{"student": c, "polygon": p} for c, p in seats.items()]
        assert client.put(f"/api/v1/cameras/{cam}/seatmap", json={"seats": seat_list}).is_success
    session = client.post("/api/v1/sessions", json={"classroom_id": room_id, "title": "scale"})
    assert session.status_code == 201, session.text
    return str(session.json()["id"])


def test_two_apis_two_workers_store_every_message_exactly_once(
    cluster: list[str], own_pg_url: str, redis_url: str, tmp_path: Path, data_dir: Path
) -> None:
    clip = make_demo_clip(tmp_path / "clip", data_dir)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with (
        httpx.Client(base_url=cluster[0], timeout=20) as api0,
        httpx.Client(base_url=cluster[1], timeout=20) as api1,
    ):
        _login(api0)
        _login(api1)
        session_id = _start_session(api0, clip.video, clip.seats)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            owners = {r.get(lease_key(c)) for c in ("cam-a", "cam-b")}
            if owners == {"w0", "w1"} and r.xlen(FRAMES_STREAM) >= 16:
                break
            time.sleep(1)
        assert owners == {"w0", "w1"}, f"leases: {owners}"
        assert api1.post(f"/api/v1/sessions/{session_id}/stop").is_success
        time.sleep(3)  # in-flight batches of both workers land on the stream
        drain_by = time.monotonic() + 90  # both ingest consumers drain and acknowledge
        while True:
            groups = r.xinfo_groups(FRAMES_STREAM)
            drained = all(g["pending"] == 0 and g["lag"] == 0 for g in groups)
            if drained or time.monotonic() > drain_by:
                break
            time.sleep(0.5)
        assert drained, f"ingest did not drain the stream in 90 s: {groups}"
        entries: list[tuple[str, dict[str, str]]] = r.xrange(FRAMES_STREAM)  # type: ignore[assignment]
        messages = [FrameMessage.model_validate_json(f["data"]) for _, f in entries]
        consumers = {c["name"] for c in r.xinfo_consumers(FRAMES_STREAM, groups[0]["name"])}
        timelines = [
            api.get(f"/api/v1/sessions/{session_id}/summary").json() for api in (api0, api1)
        ]
    r.close()
    assert {m.camera_id for m in messages} == {"cam-a", "cam-b"}
    assert {m.worker_id for m in messages} == {"w0", "w1"}
    assert consumers >= {"api0", "api1"}
    expected_aggs = {(m.camera_id, int(m.ts.timestamp())) for m in messages}
    expected_samples = {
        (f.student, int(m.ts.timestamp())) for m in messages for f in m.faces if f.student
    }
    with psycopg.connect(own_pg_url) as conn:
        aggs = conn.execute(
            "SELECT camera_id, t FROM class_aggregates WHERE session_id = %s", (session_id,)
        ).fetchall()
        samples = conn.execute(
            "SELECT s.code, e.t FROM emotion_samples e JOIN students s ON s.id = e.student_id "
            "WHERE e.session_id = %s",
            (session_id,),
        ).fetchall()
    assert len(aggs) == len(set(aggs)) and set(aggs) == expected_aggs  # none twice, none missed
    assert len(samples) == len(set(samples)) and set(samples) == expected_samples
    assert len(expected_samples) > 0
    assert timelines[0] == timelines[1], "the two replicas disagree on history"

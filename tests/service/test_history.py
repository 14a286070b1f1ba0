"""History: timeline buckets, summary shares, classroom history, CSV, validation, audit."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.ingest.writer import Ingestor
from service.main import create_app
from service.metrics import Metrics
from service.settings import ServiceSettings
from service.store.tables import AuditEntry
from tests.service.conftest import World, frame, start_session

API = "/api/v1"
T0 = 1_789_999_200  # a whole hour (UTC)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def recorded(db_factory: sessionmaker[Session], world: World) -> str:
    """60 s of a per-student session: focus 0.9 for 30 s, then 0.1 (joy dominates)."""
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student", started_at=T0)
    msgs = [
        frame(
            world.camera_a,
            T0 + s,
            ["s01", "s02", "s03"],
            session_id=sid,
            seq=s,
            focus=0.9 if s < 30 else 0.1,
        )
        for s in range(60)
    ]
    Ingestor(db_factory, None, Metrics(), 5).ingest(msgs)
    return sid


def _range() -> str:
    return f"start={_iso(T0)}&end={_iso(T0 + 60)}"


def test_class_timeline_buckets(client: TestClient, world: World, recorded: str) -> None:
    r = client.get(
        f"{API}/sessions/{recorded}/timeline?bucket=10s&{_range()}", headers=world.auth("analyst")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6 and body["bucket_s"] == 10
    focus = [round(b["mean"]["focus"], 6) for b in body["items"]]
    assert focus == [0.9, 0.9, 0.9, 0.1, 0.1, 0.1]
    assert [b["samples"] for b in body["items"]] == [10] * 6
    assert body["items"][0]["face_count"] == 3
    page = client.get(
        f"{API}/sessions/{recorded}/timeline?bucket=1m&limit=1&offset=0&{_range()}",
        headers=world.auth("analyst"),
    ).json()
    assert page["total"] == 1 and page["items"][0]["samples"] == 60
    assert round(page["items"][0]["mean"]["focus"], 6) == 0.5


def test_student_timeline_is_audited(
    client: TestClient, world: World, recorded: str, db_factory: sessionmaker[Session]
) -> None:
    url = f"{API}/sessions/{recorded}/timeline?bucket=30s&student=s02&{_range()}"
    r = client.get(url, headers=world.auth("analyst_granted"))
    assert r.status_code == 200, r.text
    assert [round(b["mean"]["focus"], 6) for b in r.json()["items"]] == [0.9, 0.1]
    with db_factory() as db:
        entry = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.username, entry.action, entry.session_id, entry.student_code) == (
        "analyst_granted",
        "timeline",
        recorded,
        "s02",
    )
    # an analyst without a grant sees aggregates only
    assert client.get(url, headers=world.auth("analyst")).status_code == 403
    unknown = url.replace("student=s02", "student=s77")
    assert client.get(unknown, headers=world.auth("teacher_a")).status_code == 404


def test_aggregate_only_hides_per_student_from_everyone(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    sid = start_session(db_factory, world.room_b, world.camera_b, "aggregate_only", started_at=T0)
    msgs = [
        frame(world.camera_b, T0 + s, ["x"] * (3 if s < 5 else 6), session_id=sid, seq=s)
        for s in range(10)
    ]
    Ingestor(db_factory, None, Metrics(), 5).ingest(msgs)
    for who in ("admin", "teacher_b", "analyst"):
        r = client.get(
            f"{API}/sessions/{sid}/timeline?student=x&start={_iso(T0)}&end={_iso(T0 + 10)}",
            headers=world.auth(who),
        )
        assert r.status_code == 403, who
        assert "aggregate_only" in r.json()["detail"]
    summary = client.get(f"{API}/sessions/{sid}/summary", headers=world.auth("admin")).json()
    assert summary["per_student_visible"] is False and summary["students"] == []
    # seconds with fewer than k=5 faces carry no class figure
    assert summary["class_share"]["seconds"] == 5
    tl = client.get(
        f"{API}/sessions/{sid}/timeline?bucket=5s&start={_iso(T0)}&end={_iso(T0 + 10)}",
        headers=world.auth("analyst"),
    ).json()
    assert tl["items"][0]["mean"] is None and tl["items"][1]["mean"] is not None


def test_summary_shares(client: TestClient, world: World, recorded: str) -> None:
    r = client.get(f"{API}/sessions/{recorded}/summary", headers=world.auth("teacher_a"))
    body = r.json()
    assert body["per_student_visible"] is True
    assert body["class_share"]["seconds"] == 60
    assert body["class_share"]["share"]["focus"] == pytest.approx(0.5)
    assert body["class_share"]["share"]["joy"] == pytest.approx(0.5)
    assert [s["subject"] for s in body["students"]] == ["s01", "s02", "s03"]
    analyst = client.get(f"{API}/sessions/{recorded}/summary", headers=world.auth("analyst")).json()
    assert analyst["per_student_visible"] is False and analyst["students"] == []
    audit = client.get(f"{API}/audit?session_id={recorded}", headers=world.auth("admin")).json()
    assert [(e["username"], e["action"]) for e in audit["items"]] == [("teacher_a", "summary")]


def test_csv_exports(client: TestClient, world: World, recorded: str) -> None:
    r = client.get(
        f"{API}/sessions/{recorded}/timeline.csv?bucket=30s&{_range()}",
        headers=world.auth("analyst"),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["bucket_start"] for row in rows] == [
        _iso(T0).replace("Z", "+00:00"),
        _iso(T0 + 30).replace("Z", "+00:00"),
    ]
    assert [float(row["focus"]) for row in rows] == [0.9, 0.1]
    assert rows[0]["samples"] == "30" and float(rows[0]["face_count"]) == 3.0
    r = client.get(f"{API}/sessions/{recorded}/summary.csv", headers=world.auth("teacher_a"))
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["subject"] for row in rows] == ["class", "s01", "s02", "s03"]
    assert float(rows[1]["focus"]) == 0.5 and rows[1]["seconds"] == "60"
    r = client.get(
        f"{API}/classrooms/{world.room_a}/history.csv?bucket=1h"
        f"&start={_iso(T0 - 3600)}&end={_iso(T0 + 3600)}",
        headers=world.auth("analyst"),
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and rows[0]["samples"] == "60"


def test_classroom_history(client: TestClient, world: World, recorded: str) -> None:
    r = client.get(
        f"{API}/classrooms/{world.room_a}/history?bucket=1h"
        f"&start={_iso(T0 - 86400)}&end={_iso(T0 + 86400)}",
        headers=world.auth("analyst"),
    )
    body = r.json()
    assert body["session_ids"] == [recorded]
    assert body["total"] == 1 and round(body["items"][0]["mean"]["focus"], 6) == 0.5
    r = client.get(f"{API}/classrooms/{world.room_a}/history", headers=world.auth("teacher_b"))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("bucket=banana", "bucket"),
        ("bucket=0s", "bucket"),
        (f"start={_iso(T0 + 60)}&end={_iso(T0)}", "end"),
        ("start=1900-01-01T00:00:00Z&end=1900-01-02T00:00:00Z", "start"),
        (f"start={_iso(T0)}&end={_iso(T0 + 30 * 86400)}", "end"),
        (f"bucket=1s&start={_iso(T0)}&end={_iso(T0 + 86400)}", "bucket"),
        ("start=yesterday", "start"),
        ("limit=100000", "limit"),
    ],
)
def test_absurd_ranges_rejected(
    client: TestClient, world: World, recorded: str, query: str, loc: str
) -> None:
    r = client.get(f"{API}/sessions/{recorded}/timeline?{query}", headers=world.auth("analyst"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == loc


def test_served_class_page_is_shared_briefly_per_token(
    settings: ServiceSettings, db_factory: sessionmaker[Session], world: World, recorded: str
) -> None:
    """A class page served to a token is re-served from memory within the cache window, even
    after logout (documented staleness); per-student pages and other tokens are checked anew."""
    app = create_app(settings.model_copy(update={"history_cache_s": 300.0}), sessions=db_factory)
    page = f"{API}/sessions/{recorded}/timeline?bucket=10s&{_range()}"
    with TestClient(app) as client:
        first = client.get(page, headers=world.auth("teacher_a"))
        assert first.status_code == 200, first.text
        granted = client.get(page + "&student=s01", headers=world.auth("teacher_a"))
        assert granted.status_code == 200, granted.text
        # another token is authorised on its own even though the result is cached
        assert client.get(page, headers=world.auth("teacher_b")).status_code == 403
        assert client.post(f"{API}/auth/logout", headers=world.auth("teacher_a")).status_code == 204
        again = client.get(page, headers=world.auth("teacher_a"))
        assert again.status_code == 200 and again.content == first.content
        for other in (page + "&student=s01", page.replace("bucket=10s", "bucket=1m")):
            assert client.get(other, headers=world.auth("teacher_a")).status_code == 401

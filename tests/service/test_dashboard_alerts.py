"""Alert rules evaluated server-side on stored scores (real Postgres, real ingest)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contract import LABELS, ClassAggregate, FaceScore, FrameMessage, Probs
from service import alerts as al
from service.ingest.writer import Ingestor
from service.metrics import Metrics
from service.store.tables import AuditEntry
from tests.service.conftest import World, start_session

API = "/api/v1"


def _probs(label: str, value: float) -> Probs:
    rest = (1.0 - value) / 5
    return Probs(**{lb: (value if lb == label else rest) for lb in LABELS})


def _frame(camera: str, sid: str, t: float, faces: dict[str, Probs]) -> FrameMessage:
    scores = [
        FaceScore(track_id=i, student=c, box=(0, 0, 9, 9), probs=p, smoothed=p, det_prob=0.9)
        for i, (c, p) in enumerate(faces.items())
    ]
    mean = Probs.from_sequence(
        [sum(s.smoothed.as_list()[k] for s in scores) / len(scores) for k in range(6)]
    )
    return FrameMessage(
        camera_id=camera,
        session_id=sid,
        worker_id="w1",
        seq=int(t),
        ts=datetime.fromtimestamp(t, UTC),
        t=t,
        faces=scores,
        aggregate=ClassAggregate(face_count=len(scores), mean=mean),
    )


def _lesson(world: World, sid: str, t0: float, seconds: int) -> list[FrameMessage]:
    """s01 drowsy all along; s02+s03 confused for the first 70 s (class confusion 0.392)."""
    out = []
    for i in range(seconds):
        faces = {f"s{k:02d}": _probs("focus", 0.7) for k in range(1, 6)}
        faces["s01"] = _probs("drowsy", 0.8)
        if i < 70:
            faces["s02"] = faces["s03"] = _probs("confusion", 0.9)
        out.append(_frame(world.camera_a, sid, t0 + i, faces))
    return out


def test_find_runs_joins_short_gaps_and_keeps_long_enough_runs() -> None:
    points = [(t, 0.5) for t in range(100, 130)] + [(133, 0.9)] + [(t, 0.4) for t in (200, 201)]
    runs = al.find_runs(points, min_duration_s=20, gap_s=5)
    assert runs == [al.Run(start=100, end=133, peak=0.9)]
    assert runs[0].duration_s == 34
    assert al.find_runs(points, min_duration_s=1, gap_s=2)[-1] == al.Run(200, 201, 0.4)
    assert al.find_runs([], 1, 5) == []


def test_default_rules_raise_class_and_student_alerts_listed_by_role(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    t0 = float(int(time.time()) - 200)
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student", started_at=t0)
    Ingestor(db_factory, None, Metrics(), k_anonymity=5).ingest(_lesson(world, sid, t0, 150))

    res = client.get(f"{API}/sessions/{sid}/alerts", headers=world.auth("teacher_a"))
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["per_student_visible"] is True
    assert [r["id"] for r in body["rules"]] == ["class-confusion", "student-drowsy"]
    by_rule = {a["rule_id"]: a for a in body["items"]}
    confusion, drowsy = by_rule["class-confusion"], by_rule["student-drowsy"]
    assert confusion["student"] is None and confusion["duration_s"] == 70
    assert confusion["peak"] == pytest.approx((2 * 0.9 + 0.04 + 2 * 0.06) / 5)
    assert confusion["started_at"] == datetime.fromtimestamp(t0, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert confusion["active"] is False  # ended 80 s before the last stored second
    assert drowsy["student"] == "s01" and drowsy["duration_s"] == 150
    assert drowsy["active"] is False  # the last sample is 50 s old
    assert drowsy["message"] == "student s01: drowsy for 2 min 30 s"
    assert len(body["items"]) == 2

    again = client.get(f"{API}/sessions/{sid}/alerts", headers=world.auth("teacher_a")).json()
    assert [a["id"] for a in again["items"]] == [a["id"] for a in body["items"]]  # idempotent
    with db_factory() as db:
        audits = db.scalar(
            select(func.count()).where(AuditEntry.session_id == sid, AuditEntry.action == "alerts")
        )
    assert audits == 2

    analyst = client.get(f"{API}/sessions/{sid}/alerts", headers=world.auth("analyst")).json()
    assert analyst["per_student_visible"] is False
    assert [a["rule_id"] for a in analyst["items"]] == ["class-confusion"]
    refused = client.get(f"{API}/sessions/{sid}/alerts", headers=world.auth("teacher_b"))
    assert refused.status_code == 403


def _joy_rule() -> al.AlertRules:
    rule = al.AlertRule(
        id="c", kind=al.AlertKind.CLASS_SHARE, label="joy", threshold=0.5, min_duration_s=3
    )
    return al.AlertRules(rules=[rule])


def test_a_late_sample_merges_two_runs_into_one_alert(
    world: World, db_factory: sessionmaker[Session]
) -> None:
    rules = _joy_rule()
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    ingest = Ingestor(db_factory, None, Metrics(), k_anonymity=1)
    t0 = float(int(time.time()) - 100)
    joyful = {"s01": _probs("joy", 0.9)}
    seconds = (*range(5), *range(12, 17))  # two runs, 7 s apart
    ingest.ingest([_frame(world.camera_a, sid, t0 + i, joyful) for i in seconds])
    with db_factory() as db:
        al.evaluate_session(db, sid, rules, ended_at=None, now=t0 + 20)
        db.commit()
        assert len(al.session_alerts(db, sid, students=True)) == 2
    ingest.ingest([_frame(world.camera_a, sid, t0 + 8, joyful)])  # late: gaps now <= 5 s
    with db_factory() as db:
        al.evaluate_session(db, sid, rules, ended_at=None, now=t0 + 25)
        rows = al.session_alerts(db, sid, students=True)
        assert [(r.started_t, r.last_t) for r in rows] == [(int(t0), int(t0) + 16)]


def test_windowed_evaluation_extends_a_run_that_began_before_the_window(
    world: World, db_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(al, "LOOKBACK_S", 10)
    rules = _joy_rule()
    sid = start_session(db_factory, world.room_a, world.camera_a, "per_student")
    ingest = Ingestor(db_factory, None, Metrics(), k_anonymity=1)
    t0 = float(int(time.time()) - 200)
    joyful = {"s01": _probs("joy", 0.9)}
    ingest.ingest([_frame(world.camera_a, sid, t0 + i, joyful) for i in range(30)])
    with db_factory() as db:
        assert al.evaluate_session(db, sid, rules, ended_at=None, now=t0 + 30) == 1
        db.commit()
    ingest.ingest([_frame(world.camera_a, sid, t0 + i, joyful) for i in range(30, 60)])
    with db_factory() as db:
        # The window starts at t0 + 30 - 10 - GAP_S - 1 = t0 + 14, inside the stored run.
        al.evaluate_session(db, sid, rules, ended_at=None, now=t0 + 60)
        db.commit()
        rows = al.session_alerts(db, sid, students=True)
        assert [(r.started_t, r.last_t) for r in rows] == [(int(t0), int(t0) + 59)]
        # A second dashboard polling a second later reuses that evaluation.
        assert al.evaluate_session(db, sid, rules, ended_at=None, now=t0 + 61) == 0
        progress = db.get(al.AlertProgress, sid, populate_existing=True)
        assert progress is not None and progress.evaluated_t == int(t0) + 60
        assert not progress.final
    with db_factory() as db:  # 30 s after the end: one last full pass, then nothing more
        assert al.evaluate_session(db, sid, rules, ended_at=t0 + 60, now=t0 + 95) == 1
        db.commit()
        assert db.get(al.AlertProgress, sid, populate_existing=True).final  # type: ignore[union-attr]
        assert al.evaluate_session(db, sid, rules, ended_at=t0 + 60, now=t0 + 99) == 0


def test_alert_rules_are_configurable_per_classroom_with_clear_errors(
    client: TestClient, world: World
) -> None:
    url = f"{API}/classrooms/{world.room_a}/alert-rules"
    assert client.get(url, headers=world.auth("analyst")).json() == al.DEFAULT_RULES.model_dump(
        mode="json"
    )
    rules = {
        "rules": [
            {
                "id": "bored-class",
                "kind": "class_share",
                "label": "boredom",
                "threshold": 0.4,
                "min_duration_s": 120,
            }
        ]
    }
    assert client.put(url, json=rules, headers=world.auth("teacher_a")).json() == rules
    assert client.get(url, headers=world.auth("teacher_a")).json() == rules
    assert client.put(url, json=rules, headers=world.auth("analyst")).status_code == 403
    assert client.put(url, json=rules, headers=world.auth("teacher_b")).status_code == 403
    bad = {"rules": [dict(rules["rules"][0], label="sleepy", threshold=2), rules["rules"][0]]}
    res = client.put(url, json=bad, headers=world.auth("admin"))
    assert res.status_code == 422
    text = res.text
    assert "label" in text and "threshold" in text
    dupes = {"rules": [rules["rules"][0], rules["rules"][0]]}
    res = client.put(url, json=dupes, headers=world.auth("admin"))
    assert res.status_code == 422 and "repeated: ['bored-class']" in res.text

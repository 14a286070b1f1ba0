"""``python -m service.dashboard.bench [--quick]``: cost of the alert evaluation behind the
dashboard's alert list, on a synthetic session in a scratch Postgres database (dropped after).

Prints JSON: the first (full) evaluation of a session and the windowed re-evaluations that a
live dashboard triggers every few seconds (p50/p95), for the default rules and for a busy rule
set that fires thousands of alerts. Loopback only, bounded (one session, fixed size).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from contract import LABELS
from service import alerts as al
from service.settings import ServiceSettings
from service.store.db import make_engine, make_session_factory, migrate
from service.store.tables import (
    Camera,
    ClassAggregateRow,
    Classroom,
    ClassSession,
    EmotionSample,
    SessionCamera,
    Student,
)

BUSY = al.AlertRules(
    rules=[
        al.AlertRule(
            id="busy-class",
            kind=al.AlertKind.CLASS_SHARE,
            label="confusion",
            threshold=0.15,
            min_duration_s=10,
        ),
        al.AlertRule(
            id="busy-student",
            kind=al.AlertKind.STUDENT_DOMINANT,
            label="drowsy",
            threshold=0.0,
            min_duration_s=3,
        ),
        *al.DEFAULT_RULES.rules,
    ]
)


def _fill(factory: sessionmaker[Session], seconds: int, students: int, t0: int) -> int:
    """One per-student session: random scores per student per second; returns samples."""
    rnd = random.Random(0)
    with factory() as db:
        room = Classroom(name="bench", privacy_mode="per_student")
        db.add(room)
        db.flush()
        db.add(Camera(id="bench-cam", classroom_id=room.id, name="front", source_url="bench"))
        roster = [Student(classroom_id=room.id, code=f"s{i:02d}") for i in range(students)]
        db.add_all(roster)
        started = datetime.fromtimestamp(t0, UTC)
        db.add(
            ClassSession(
                id="bench", classroom_id=room.id, privacy_mode="per_student", started_at=started
            )
        )
        db.flush()
        db.add(SessionCamera(session_id="bench", camera_id="bench-cam"))
        db.flush()
        samples: list[dict[str, Any]] = []
        aggregates: list[dict[str, Any]] = []
        for t in range(t0, t0 + seconds):
            mean = [0.0] * len(LABELS)
            for student in roster:
                raw = [rnd.random() for _ in LABELS]
                values = [v / sum(raw) for v in raw]
                mean = [m + v / students for m, v in zip(mean, values, strict=True)]
                samples.append(
                    {
                        "session_id": "bench",
                        "student_id": student.id,
                        "t": t,
                        **dict(zip(LABELS, values, strict=True)),
                        "dominant": values.index(max(values)),
                    }
                )
            aggregates.append(
                {
                    "session_id": "bench",
                    "camera_id": "bench-cam",
                    "t": t,
                    "face_count": students,
                    **dict(zip(LABELS, mean, strict=True)),
                    "dominant": mean.index(max(mean)),
                }
            )
        for i in range(0, len(samples), 20_000):
            db.execute(insert(EmotionSample), samples[i : i + 20_000])
        db.execute(insert(ClassAggregateRow), aggregates)
        db.commit()
    return len(samples)


def _measure(
    factory: sessionmaker[Session], rules: al.AlertRules, now: float, repeats: int
) -> dict[str, float | int]:
    with factory() as db:
        start = time.perf_counter()
        al.evaluate_session(db, "bench", rules, ended_at=None, now=now)
        db.commit()
        full_ms = (time.perf_counter() - start) * 1000
    times = []
    alerts = 0
    for i in range(repeats):
        with factory() as db:
            start = time.perf_counter()
            al.evaluate_session(db, "bench", rules, ended_at=None, now=now + 5 * (i + 1))
            alerts = len(al.session_alerts(db, "bench", students=True, limit=200))
            db.commit()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    with factory() as db:
        stored = len(al.session_alerts(db, "bench", students=True))
    return {
        "alerts_stored": stored,
        "alerts_listed": alerts,
        "first_full_ms": round(full_ms, 1),
        "windowed_p50_ms": round(statistics.median(times), 1),
        "windowed_p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1),
    }


def run(admin_url: str, minutes: int, students: int, repeats: int) -> dict[str, Any]:
    """Create a scratch database, fill one session, measure both rule sets, drop it."""
    name = f"emo_dashbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(ServiceSettings(database_url=admin_url.rsplit("/", 1)[0] + "/" + name))
    try:
        migrate(engine)
        factory = make_session_factory(engine)
        t0 = int(time.time()) - minutes * 60
        samples = _fill(factory, minutes * 60, students, t0)
        result: dict[str, Any] = {
            "session_minutes": minutes,
            "students": students,
            "samples": samples,
        }
        result["default_rules"] = _measure(factory, al.DEFAULT_RULES, t0 + minutes * 60, repeats)
        with factory() as db:  # the busy rules start from scratch
            db.execute(delete(al.AlertRow))
            db.execute(delete(al.AlertProgress))
            db.commit()
        result["busy_rules"] = _measure(factory, BUSY, t0 + minutes * 60, repeats)
        return result
    finally:
        engine.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="Postgres URL allowed to create and drop a scratch database",
    )
    parser.add_argument("--quick", action="store_true", help="10-minute session (CI smoke)")
    parser.add_argument("--minutes", type=int, default=None, help="session length (default 60)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    minutes = args.minutes or (10 if args.quick else 60)
    if not 1 <= minutes <= 240 or not 1 <= args.students <= 100:
        parser.error("--minutes must be 1..240 and --students 1..100")
    result = run(args.admin_url, minutes, args.students, args.repeats)
    print(json.dumps(result))  # noqa: T201 - the benchmark's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

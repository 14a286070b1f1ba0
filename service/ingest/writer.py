"""Store a batch of worker messages in one transaction, idempotently, then publish it live."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from contract import LABELS, FrameMessage, PrivacyMode
from service.errors import IngestError
from service.live.bus import LiveBus
from service.live.events import LiveEvent
from service.metrics import Metrics
from service.privacy import stricter
from service.store.tables import (
    ClassAggregateRow,
    Classroom,
    ClassSession,
    EmotionSample,
    SessionCamera,
    Student,
)

logger = logging.getLogger(__name__)

#: Messages stamped later than this after a session ended are dropped.
END_GRACE_S = 5.0
SAMPLES: Table = EmotionSample.__table__  # type: ignore[assignment]
AGGREGATES: Table = ClassAggregateRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class IngestResult:
    """What one batch did: frames accepted, rows inserted, and everything not stored, by reason."""

    frames: int
    samples: int
    aggregates: int
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _SessionInfo:
    id: str
    classroom_id: int
    mode: PrivacyMode
    ended_at: float | None
    camera_ids: frozenset[str]


@dataclass
class _Plan:
    samples: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    aggregates: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    events: list[LiveEvent] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    frames: int = 0


class Ingestor:
    """The one place worker messages become rows. Thread-safe (a DB session per call)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        bus: LiveBus | None,
        metrics: Metrics,
        k_anonymity: int,
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._metrics = metrics
        self._k = k_anonymity

    def ingest(self, messages: Sequence[FrameMessage]) -> IngestResult:
        """Store ``messages`` in one transaction; a redelivered message inserts nothing new."""
        if not messages:
            return IngestResult(0, 0, 0)
        with self._metrics.batch_seconds.time(), self._sessions() as db:
            plan = self._plan(db, messages)
            conn = db.connection()
            samples = _insert(conn, SAMPLES, list(plan.samples.values()))
            aggregates = _insert(conn, AGGREGATES, list(plan.aggregates.values()))
            db.commit()
        self._metrics.samples_ingested.inc(samples)
        self._metrics.aggregates_ingested.inc(aggregates)
        self._metrics.frames_ingested.inc(plan.frames)
        for reason, count in plan.dropped.items():
            self._metrics.dropped.labels(reason).inc(count)
        if self._bus is not None and plan.events:
            now = time.time()
            self._bus.publish([_stamp(e, now) for e in plan.events])
        return IngestResult(plan.frames, samples, aggregates, dict(plan.dropped))

    def _plan(self, db: Session, messages: Sequence[FrameMessage]) -> _Plan:
        sessions = _load_sessions(db, messages)
        classrooms = {s.classroom_id for s in sessions.values() if s.mode == "per_student"}
        students = _load_students(db, classrooms)
        plan = _Plan()
        for msg in messages:
            info = _resolve(sessions, msg)
            reason = _reject_reason(info, msg)
            if reason is not None or info is None:
                plan.dropped[reason or "no_session"] += 1
                continue
            plan.frames += 1
            self._plan_message(plan, info, msg, students.get(info.classroom_id, {}))
        return plan

    def _plan_message(
        self,
        plan: _Plan,
        info: _SessionInfo,
        msg: FrameMessage,
        roster: dict[str, tuple[int, bool]],
    ) -> None:
        t = int(msg.ts.timestamp())
        agg = msg.aggregate
        hidden = info.mode == PrivacyMode.AGGREGATE_ONLY and agg.face_count < self._k
        mean = None if hidden or agg.mean is None else tuple(agg.mean.as_list())
        plan.aggregates.setdefault((info.id, msg.camera_id, t), _aggregate_row(info, msg, t, mean))
        students: dict[str, tuple[float, ...]] = {}
        if info.mode == PrivacyMode.PER_STUDENT:
            for face in msg.faces:
                code = face.student
                entry = roster.get(code) if code is not None else None
                if code is None or entry is None:
                    plan.dropped["unseated" if code is None else "unknown_student"] += 1
                    continue
                student_id, opted_out = entry
                if opted_out:
                    plan.dropped["opted_out"] += 1
                    continue
                values = face.smoothed.as_list()
                key = (info.id, student_id, t)
                plan.samples.setdefault(key, _sample_row(info.id, student_id, t, values))
                students[code] = tuple(values)
        elif msg.faces:
            plan.dropped["aggregate_only"] += len(msg.faces)
        plan.events.append(
            LiveEvent(
                session_id=info.id,
                camera_id=msg.camera_id,
                ts=msg.ts.isoformat(),
                face_count=agg.face_count,
                mean=mean,
                students=students,
                hidden=hidden,
            )
        )


def _stamp(event: LiveEvent, now: float) -> LiveEvent:
    return LiveEvent(**{**event.__dict__, "sent": now})


def _resolve(sessions: dict[str, _SessionInfo], msg: FrameMessage) -> _SessionInfo | None:
    if msg.session_id is not None:
        return sessions.get(msg.session_id)
    return sessions.get(f"camera:{msg.camera_id}")


def _reject_reason(info: _SessionInfo | None, msg: FrameMessage) -> str | None:
    if info is None:
        return "no_session"
    if info.mode == PrivacyMode.OFF:
        return "session_off"
    if msg.camera_id not in info.camera_ids:
        return "camera_not_in_session"
    if info.ended_at is not None and msg.ts.timestamp() > info.ended_at + END_GRACE_S:
        return "after_session_end"
    return None


def _load_sessions(db: Session, messages: Sequence[FrameMessage]) -> dict[str, _SessionInfo]:
    """Sessions named by id, and the running session of each camera that sent no session id."""
    named = {m.session_id for m in messages if m.session_id is not None}
    unnamed = {m.camera_id for m in messages if m.session_id is None}
    query = select(ClassSession, Classroom.privacy_mode).join(
        Classroom, Classroom.id == ClassSession.classroom_id
    )
    found: dict[str, _SessionInfo] = {}
    rows = list(db.execute(query.where(ClassSession.id.in_(named)))) if named else []
    by_camera: dict[str, str] = {}
    if unnamed:
        running = db.execute(
            select(SessionCamera.camera_id, SessionCamera.session_id)
            .join(ClassSession, ClassSession.id == SessionCamera.session_id)
            .where(SessionCamera.camera_id.in_(unnamed), ClassSession.ended_at.is_(None))
        )
        by_camera = dict(running.all())
        ids = set(by_camera.values()) - named
        if ids:
            rows += list(db.execute(query.where(ClassSession.id.in_(ids))))
    cameras = _session_cameras(db, {s.id for s, _ in rows})
    for sess, room_mode in rows:
        ended = sess.ended_at.timestamp() if sess.ended_at is not None else None
        found[sess.id] = _SessionInfo(
            sess.id,
            sess.classroom_id,
            stricter(sess.privacy_mode, room_mode),
            ended,
            frozenset(cameras.get(sess.id, ())),
        )
    for camera_id, session_id in by_camera.items():
        found[f"camera:{camera_id}"] = found[session_id]
    return found


def _session_cameras(db: Session, session_ids: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    if session_ids:
        rows = db.execute(
            select(SessionCamera.session_id, SessionCamera.camera_id).where(
                SessionCamera.session_id.in_(session_ids)
            )
        )
        for session_id, camera_id in rows:
            out.setdefault(session_id, set()).add(camera_id)
    return out


def _load_students(db: Session, classroom_ids: set[int]) -> dict[int, dict[str, tuple[int, bool]]]:
    out: dict[int, dict[str, tuple[int, bool]]] = {}
    if classroom_ids:
        rows = db.execute(
            select(Student.classroom_id, Student.code, Student.id, Student.opted_out).where(
                Student.classroom_id.in_(classroom_ids)
            )
        )
        for classroom_id, code, student_id, opted_out in rows:
            out.setdefault(classroom_id, {})[code] = (student_id, opted_out)
    return out


def _sample_row(session_id: str, student_id: int, t: int, values: list[float]) -> dict[str, Any]:
    row: dict[str, Any] = {"session_id": session_id, "student_id": student_id, "t": t}
    row.update(zip(LABELS, values, strict=True))
    row["dominant"] = values.index(max(values))
    return row


def _aggregate_row(
    info: _SessionInfo, msg: FrameMessage, t: int, mean: tuple[float, ...] | None
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "session_id": info.id,
        "camera_id": msg.camera_id,
        "t": t,
        "face_count": msg.aggregate.face_count,
        "dominant": None,
    }
    for i, label in enumerate(LABELS):
        row[label] = mean[i] if mean is not None else None
    if mean is not None:
        row["dominant"] = mean.index(max(mean))
    return row


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """INSERT .. ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return _insert_unnest(conn, table, rows)
    if dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing().returning(table.c.t)
        return len(conn.execute(stmt, rows).all())
    raise IngestError(f"database dialect {dialect!r} is not supported (postgresql, sqlite)")


_PG_ARRAY = {
    "STRING": "varchar[]",
    "INTEGER": "int[]",
    "BIGINTEGER": "bigint[]",
    "SMALLINTEGER": "smallint[]",
    "FLOAT": "float8[]",
}


def _insert_unnest(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Postgres: one statement with one array per column (no per-row placeholders to parse)."""
    columns = [c.name for c in table.columns]
    casts = [_PG_ARRAY[type(c.type).__name__.upper()] for c in table.columns]
    arrays = ", ".join(
        f"CAST(:{name} AS {cast})" for name, cast in zip(columns, casts, strict=True)
    )
    sql = text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    )
    params = {name: [row[name] for row in rows] for name in columns}
    result = conn.execute(sql, params)
    return int(getattr(result, "rowcount", 0) or 0)

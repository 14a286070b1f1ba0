"""Alert rules evaluated server-side on stored scores, so alerts show live and in history.

Two kinds of rule, configurable per classroom (defaults below):

- ``class_share``: the class figure of ``label`` (the mean smoothed probability over the faces
  seen, i.e. the expected share of the class in that state, averaged over the session's
  cameras) is ``>= threshold`` for ``>= min_duration_s`` seconds. Default: confusion >= 30 %
  of the class for >= 60 s. Works in ``per_student`` and ``aggregate_only`` sessions (seconds
  hidden by k-anonymity have no class figure and do not count).
- ``student_dominant``: a student's dominant emotion is ``label`` (with probability
  ``>= threshold``) for ``>= min_duration_s`` seconds. Default: drowsy for >= 2 min. Needs
  per-student samples, so only ``per_student`` sessions raise it.

A run tolerates gaps of up to ``GAP_S`` seconds (a face briefly lost, a frame dropped).
Evaluation reads only stored rows and is idempotent: each run is one row keyed by
(session, rule, subject, start second), updated as the run grows. It runs when a session's
alerts are read (the live dashboard polls them every few seconds; the history view reads them
once), incrementally: only the recent window of a running session is re-read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from contract import LABELS, Label
from service.errors import ServiceError
from service.schemas.common import Code
from service.store.tables import (
    Base,
    ClassAggregateRow,
    EmotionSample,
    Student,
    utcnow,
)

logger = logging.getLogger(__name__)

#: Seconds without a qualifying sample that still continue a run.
GAP_S = 5
#: Windowed evaluation re-reads this many seconds before the previous one (ingest lag).
LOOKBACK_S = 300
#: Seconds after a session ended when one last full evaluation fixes its alerts for good.
FINAL_AFTER_S = 30
#: A running session is evaluated at most this often (several dashboards polling it).
MIN_INTERVAL_S = 2
#: The ``subject`` column of class-level alerts (student alerts hold the student code).
CLASS_SUBJECT = ""


class AlertError(ServiceError):
    """Alert rules could not be evaluated or stored."""


class AlertKind(StrEnum):
    CLASS_SHARE = "class_share"
    STUDENT_DOMINANT = "student_dominant"


class AlertRule(BaseModel):
    """One configurable rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Code = Field(description="stable name of the rule, e.g. class-confusion")
    kind: AlertKind
    label: Label
    threshold: float = Field(
        ge=0.0, le=1.0, description="class_share: class figure >=; student: probability >="
    )
    min_duration_s: int = Field(ge=1, le=4 * 3600, description="seconds the condition must hold")


class AlertRules(BaseModel):
    """The rules of one classroom."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "rules": [
                    {
                        "id": "class-confusion",
                        "kind": "class_share",
                        "label": "confusion",
                        "threshold": 0.3,
                        "min_duration_s": 60,
                    }
                ]
            }
        },
    )

    rules: list[AlertRule] = Field(max_length=20)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[AlertRule]) -> list[AlertRule]:
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {dupes}")
        return rules


DEFAULT_RULES = AlertRules(
    rules=[
        AlertRule(
            id="class-confusion",
            kind=AlertKind.CLASS_SHARE,
            label="confusion",
            threshold=0.30,
            min_duration_s=60,
        ),
        AlertRule(
            id="student-drowsy",
            kind=AlertKind.STUDENT_DOMINANT,
            label="drowsy",
            threshold=0.0,
            min_duration_s=120,
        ),
    ]
)


class AlertRuleSet(Base):
    """A classroom's alert rules (JSON list of ``AlertRule``); absent: ``DEFAULT_RULES``."""

    __tablename__ = "alert_rules"

    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True
    )
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertRow(Base):
    """One run of one rule for one subject (the class, or a student code) in one session."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint(
            "session_id", "rule_id", "subject", "started_t", name="uq_alerts_session_run"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("class_sessions.id", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Float)
    min_duration_s: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(64))
    started_t: Mapped[int] = mapped_column(BigInteger)
    last_t: Mapped[int] = mapped_column(BigInteger)
    peak: Mapped[float] = mapped_column(Float)


class AlertProgress(Base):
    """How far a session has been evaluated, and with which rules (their hash)."""

    __tablename__ = "alert_progress"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("class_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    rules_hash: Mapped[str] = mapped_column(String(64))
    evaluated_t: Mapped[int] = mapped_column(BigInteger)
    final: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass(frozen=True)
class Run:
    """Consecutive qualifying seconds [start, end] (gaps <= GAP_S), with the peak value."""

    start: int
    end: int
    peak: float

    @property
    def duration_s(self) -> int:
        return self.end - self.start + 1


def group_runs(points: Iterable[tuple[int, float]], gap_s: int) -> list[Run]:
    """Group time-sorted qualifying ``(t, value)`` points into runs (any length)."""
    runs: list[Run] = []
    current: Run | None = None
    for t, value in points:
        if current is not None and t - current.end <= gap_s:
            current = Run(current.start, max(current.end, t), max(current.peak, value))
            continue
        if current is not None:
            runs.append(current)
        current = Run(t, t, value)
    if current is not None:
        runs.append(current)
    return runs


def find_runs(points: Iterable[tuple[int, float]], min_duration_s: int, gap_s: int) -> list[Run]:
    """The runs of ``points`` lasting at least ``min_duration_s`` seconds."""
    return [r for r in group_runs(points, gap_s) if r.duration_s >= min_duration_s]


def extend_runs(runs: Sequence[Run], stored: Sequence[Run], gap_s: int) -> list[Run]:
    """Join each run to a stored run it continues (windowed evaluation sees only the tail)."""
    out = []
    for run in runs:
        joined = run
        for old in stored:
            if old.start <= joined.start and joined.start - old.end <= gap_s:
                joined = Run(old.start, max(old.end, joined.end), max(old.peak, joined.peak))
        out.append(joined)
    return out


def rules_for(db: Session, classroom_id: int) -> AlertRules:
    """The classroom's stored rules, or the defaults."""
    row = db.get(AlertRuleSet, classroom_id)
    if row is None:
        return DEFAULT_RULES
    return AlertRules.model_validate({"rules": row.rules})


def store_rules(db: Session, classroom_id: int, rules: AlertRules) -> None:
    """Replace the classroom's rules (the caller commits)."""
    row = db.get(AlertRuleSet, classroom_id)
    payload = [r.model_dump(mode="json") for r in rules.rules]
    if row is None:
        db.add(AlertRuleSet(classroom_id=classroom_id, rules=payload, updated_at=utcnow()))
    else:
        row.rules = payload
        row.updated_at = utcnow()


def rules_hash(rules: AlertRules) -> str:
    """Identifies a rule set (a change triggers a full re-evaluation)."""
    return hashlib.sha256(rules.model_dump_json().encode()).hexdigest()


def _class_points(
    db: Session, session_id: str, rule: AlertRule, since: int | None
) -> dict[str, list[tuple[int, float]]]:
    a = ClassAggregateRow
    column = getattr(a, rule.label)
    value = func.avg(column)
    query = select(a.t, value).where(a.session_id == session_id, column.is_not(None))
    if since is not None:
        query = query.where(a.t >= since)
    rows = db.execute(query.group_by(a.t).having(value >= rule.threshold).order_by(a.t))
    return {CLASS_SUBJECT: [(int(t), float(v)) for t, v in rows]}


def _student_points(
    db: Session, session_id: str, rule: AlertRule, since: int | None
) -> dict[str, list[tuple[int, float]]]:
    s = EmotionSample
    column = getattr(s, rule.label)
    query = (
        select(Student.code, s.t, column)
        .join(Student, Student.id == s.student_id)
        .where(s.session_id == session_id, s.dominant == LABELS.index(rule.label))
        .where(column >= rule.threshold)
    )
    if since is not None:
        query = query.where(s.t >= since)
    out: dict[str, list[tuple[int, float]]] = {}
    for code, t, v in db.execute(query.order_by(Student.code, s.t)):
        out.setdefault(code, []).append((int(t), float(v)))
    return out


def evaluate_session(
    db: Session, session_id: str, rules: AlertRules, *, ended_at: float | None, now: float
) -> int:
    """Evaluate ``rules`` on the session's stored rows and upsert the runs; returns runs seen.

    The first evaluation, a change of rules and the first one ``FINAL_AFTER_S`` after the
    session ended read the whole session; the others only the recent window (``LOOKBACK_S``
    plus the longest rule), joining runs to the stored ones they continue, and at most every
    ``MIN_INTERVAL_S``. The caller commits; two evaluations at once store the same rows
    (unique key, upsert).
    """
    digest = rules_hash(rules)
    progress = db.get(AlertProgress, session_id, populate_existing=True)
    final = ended_at is not None and now >= ended_at + FINAL_AFTER_S
    current = progress is not None and progress.rules_hash == digest
    if current and progress is not None:
        recent = not final and now - progress.evaluated_t < MIN_INTERVAL_S
        if progress.final or recent:
            return 0  # final, or another dashboard of this session has just evaluated it
    since: int | None = None
    if current and progress is not None and not final:
        longest = max((r.min_duration_s for r in rules.rules), default=0)
        since = progress.evaluated_t - max(LOOKBACK_S, longest) - GAP_S - 1
    found = 0
    for rule in rules.rules:
        fetch = _class_points if rule.kind == AlertKind.CLASS_SHARE else _student_points
        stored = _stored_runs(db, session_id, rule.id, since)
        for subject, points in fetch(db, session_id, rule, since).items():
            runs = group_runs(points, GAP_S)
            if since is not None:
                runs = extend_runs(runs, [r for _, r in stored.get(subject, [])], GAP_S)
            runs = [r for r in runs if r.duration_s >= rule.min_duration_s]
            _store_runs(
                db,
                session_id=session_id,
                rule=rule,
                subject=subject,
                runs=runs,
                stored=stored.get(subject, []),
            )
            found += len(runs)
    _save_progress(db, session_id=session_id, digest=digest, t=int(now), final=final)
    return found


def _save_progress(db: Session, *, session_id: str, digest: str, t: int, final: bool) -> None:
    """Upsert (two dashboards may evaluate a new session at the same moment)."""
    row = {"session_id": session_id, "rules_hash": digest, "evaluated_t": t, "final": final}
    insert = _dialect_insert(db, AlertProgress)
    db.execute(
        insert.values(row).on_conflict_do_update(
            index_elements=["session_id"],
            set_={"rules_hash": digest, "evaluated_t": t, "final": final},
        )
    )


def _dialect_insert(db: Session, table: type[Base]) -> Any:
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(table)
    if dialect == "sqlite":
        return sqlite_insert(table)
    raise AlertError(f"database dialect {dialect!r} is not supported (postgresql, sqlite)")


def _stored_runs(
    db: Session, session_id: str, rule_id: str, since: int | None
) -> dict[str, list[tuple[int, Run]]]:
    """Stored rows (id, run) of one rule by subject; windowed: those reaching the window."""
    query = select(
        AlertRow.id, AlertRow.subject, AlertRow.started_t, AlertRow.last_t, AlertRow.peak
    )
    query = query.where(AlertRow.session_id == session_id, AlertRow.rule_id == rule_id)
    if since is not None:
        query = query.where(AlertRow.last_t >= since - GAP_S)
    out: dict[str, list[tuple[int, Run]]] = {}
    for row_id, subject, start, last, peak in db.execute(query.order_by(AlertRow.started_t)):
        out.setdefault(subject, []).append((row_id, Run(int(start), int(last), float(peak))))
    return out


def _store_runs(
    db: Session,
    *,
    session_id: str,
    rule: AlertRule,
    subject: str,
    runs: Sequence[Run],
    stored: Sequence[tuple[int, Run]],
) -> None:
    if not runs:
        return
    # A late sample can join two runs: drop stored rows that now start inside a longer run.
    merged = [i for i, old in stored if any(r.start < old.start <= r.end for r in runs)]
    if merged:
        db.execute(delete(AlertRow).where(AlertRow.id.in_(merged)))
    rows = [
        {
            "session_id": session_id,
            "rule_id": rule.id,
            "kind": rule.kind.value,
            "label": rule.label,
            "threshold": rule.threshold,
            "min_duration_s": rule.min_duration_s,
            "subject": subject,
            "started_t": run.start,
            "last_t": run.end,
            "peak": run.peak,
        }
        for run in runs
    ]
    insert = _dialect_insert(db, AlertRow)
    stmt = insert.on_conflict_do_update(
        index_elements=["session_id", "rule_id", "subject", "started_t"],
        set_={"last_t": insert.excluded.last_t, "peak": insert.excluded.peak},
    )
    db.execute(stmt, rows)


def session_alerts(
    db: Session, session_id: str, *, students: bool, limit: int | None = None
) -> list[AlertRow]:
    """Stored alerts of a session, newest first; student alerts only when ``students``."""
    query = select(AlertRow).where(AlertRow.session_id == session_id)
    if not students:
        query = query.where(AlertRow.subject == CLASS_SUBJECT)
    query = query.order_by(AlertRow.last_t.desc(), AlertRow.id)
    return list(db.scalars(query if limit is None else query.limit(limit)))


def describe(row: AlertRow) -> str:
    """A sentence a teacher can read on a projector."""
    duration = _duration(row.last_t - row.started_t + 1)
    if row.subject == CLASS_SUBJECT:
        return (
            f"{row.label} at or above {row.threshold:.0%} of the class for {duration} "
            f"(peak {row.peak:.0%})"
        )
    return f"student {row.subject}: {row.label} for {duration}"


def _duration(seconds: int) -> str:
    minutes, secs = divmod(max(seconds, 0), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def at(t: int) -> datetime:
    """Unix second -> aware datetime."""
    return datetime.fromtimestamp(t, UTC)

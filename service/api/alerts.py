"""Alerts of a session (evaluated on the stored scores on each read) and classroom alert rules."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from service import alerts as al
from service.access import (
    audit,
    effective_mode,
    per_student_visible,
    require_classroom,
    require_session,
)
from service.deps import CurrentUser, SessionDep, StaffUser
from service.schemas.common import Limit

router = APIRouter(tags=["alerts"])
SessionId = Annotated[str, Path(min_length=1, max_length=64)]
ClassroomId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class AlertPublic(BaseModel):
    id: int
    rule_id: str
    kind: al.AlertKind
    label: str
    threshold: float
    min_duration_s: int
    student: str | None = Field(description="student code; None for a class alert")
    started_at: datetime = Field(description="first second the condition held")
    triggered_at: datetime = Field(description="when the condition had held min_duration_s")
    last_seen_at: datetime
    duration_s: int
    peak: float
    active: bool = Field(description="session running and the condition still holds")
    message: str


class AlertList(BaseModel):
    session_id: str
    running: bool
    per_student_visible: bool
    rules: list[al.AlertRule]
    items: list[AlertPublic] = Field(description="most recent first (at most ``limit``)")


def _public(row: al.AlertRow, running: bool, now: float) -> AlertPublic:
    return AlertPublic(
        id=row.id,
        rule_id=row.rule_id,
        kind=al.AlertKind(row.kind),
        label=row.label,
        threshold=row.threshold,
        min_duration_s=row.min_duration_s,
        student=row.subject or None,
        started_at=al.at(row.started_t),
        triggered_at=al.at(row.started_t + row.min_duration_s - 1),
        last_seen_at=al.at(row.last_t),
        duration_s=row.last_t - row.started_t + 1,
        peak=row.peak,
        active=running and row.last_t >= now - al.GAP_S - 2,
        message=al.describe(row),
    )


@router.get("/sessions/{session_id}/alerts", response_model=AlertList)
def session_alerts(
    session_id: SessionId, user: CurrentUser, db: SessionDep, limit: Limit = 200
) -> AlertList:
    """Evaluate the classroom's rules on the stored scores, then list the session's alerts.

    Student alerts are listed only when the mode and the caller's role allow per-student data
    (and the read is audited).
    """
    sess, classroom, access = require_session(db, user, session_id)
    rules = al.rules_for(db, classroom.id)
    now = time.time()
    ended = sess.ended_at.timestamp() if sess.ended_at is not None else None
    al.evaluate_session(db, sess.id, rules, ended_at=ended, now=now)
    visible = per_student_visible(access, effective_mode(sess, classroom))
    rows = al.session_alerts(db, sess.id, students=visible, limit=limit)
    if visible and any(r.subject for r in rows):
        audit(db, user, "alerts", classroom_id=classroom.id, session_id=sess.id)
    db.commit()
    running = sess.ended_at is None
    return AlertList(
        session_id=sess.id,
        running=running,
        per_student_visible=visible,
        rules=rules.rules,
        items=[_public(r, running, now) for r in rows],
    )


@router.get("/classrooms/{classroom_id}/alert-rules", response_model=al.AlertRules)
def get_rules(classroom_id: ClassroomId, user: CurrentUser, db: SessionDep) -> al.AlertRules:
    """The classroom's alert rules (the defaults until changed)."""
    require_classroom(db, user, classroom_id)
    return al.rules_for(db, classroom_id)


@router.put("/classrooms/{classroom_id}/alert-rules", response_model=al.AlertRules)
def put_rules(
    classroom_id: ClassroomId, body: al.AlertRules, user: StaffUser, db: SessionDep
) -> al.AlertRules:
    """Replace the classroom's alert rules (admins and its teachers)."""
    require_classroom(db, user, classroom_id, write=True)
    al.store_rules(db, classroom_id, body)
    db.commit()
    return al.rules_for(db, classroom_id)

"""History for analysts: session timeline and summary, classroom history; JSON and CSV."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service import history as hq
from service.access import (
    audit,
    effective_mode,
    per_student_visible,
    require_classroom,
    require_per_student,
    require_session,
)
from service.context import AppContext
from service.deps import ContextDep, CurrentUser, SessionDep, SettingsDep, TokenDep
from service.errors import NotFoundError
from service.http import served_key
from service.schemas.common import Limit, Offset
from service.schemas.history import Bucket, ClassroomHistory, Summary, Timeline
from service.security import user_for_token
from service.store.tables import Student, utcnow

router = APIRouter(tags=["history"])
SessionId = Annotated[str, Path(min_length=1, max_length=64)]
ClassroomId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV with a header row"}
}


@dataclass(frozen=True)
class TimelineQuery:
    """Query parameters shared by the JSON and CSV timeline endpoints."""

    bucket: str
    student: str | None
    start: datetime | None
    end: datetime | None


async def timeline_query(
    bucket: Annotated[str, Query(max_length=16, description="10s, 1m, 5m, 1h ...")] = "10s",
    student: Annotated[
        str | None, Query(max_length=64, description="student code (per-student view)")
    ] = None,
    start: Annotated[datetime | None, Query(description="default: session start")] = None,
    end: Annotated[datetime | None, Query(description="default: session end (or now)")] = None,
) -> TimelineQuery:
    return TimelineQuery(bucket, student, start, end)


TimelineQueryDep = Annotated[TimelineQuery, Depends(timeline_query)]


@dataclass(frozen=True)
class _Resolved:
    session_id: str
    student_id: int | None
    bucket_s: int
    rng: hq.TimeRange


def _resolve_timeline(
    session_id: str, q: TimelineQuery, user: CurrentUser, db: SessionDep, settings: SettingsDep
) -> _Resolved:
    """Access checks, validation and the audit record (never cached)."""
    sess, classroom, access = require_session(db, user, session_id)
    bucket_s = hq.parse_bucket(q.bucket)
    default_end = sess.ended_at or hq.next_boundary(utcnow(), bucket_s)
    rng = hq.validate_range(
        q.start or sess.started_at,
        q.end or default_end,
        max_days=settings.max_timeline_range_days,
        bucket_s=bucket_s,
        max_buckets=settings.max_buckets,
    )
    if q.student is None:
        return _Resolved(sess.id, None, bucket_s, rng)
    require_per_student(user, access, effective_mode(sess, classroom), sess.id)
    student_id = db.scalar(
        select(Student.id).where(Student.classroom_id == classroom.id, Student.code == q.student)
    )
    if student_id is None:
        raise NotFoundError(f"student {q.student!r} not found in classroom {classroom.id}")
    audit(
        db, user, "timeline", classroom_id=classroom.id, session_id=sess.id, student_code=q.student
    )
    db.commit()
    return _Resolved(sess.id, student_id, bucket_s, rng)


def _buckets(db: SessionDep, r: _Resolved) -> list[Bucket]:
    if r.student_id is None:
        return hq.class_timeline(db, r.session_id, r.rng, r.bucket_s)
    return hq.student_timeline(db, r.session_id, r.student_id, r.rng, r.bucket_s)


def _timeline_body(
    ctx: AppContext, token: str, session_id: str, q: TimelineQuery, *, limit: int, offset: int
) -> bytes:
    """Authenticate, authorise, audit and compute one timeline page (runs in the thread pool)."""
    with ctx.sessions() as db:
        user = user_for_token(db, token)
        r = _resolve_timeline(session_id, q, user, db, ctx.settings)

        def compute() -> bytes:
            buckets = _buckets(db, r)
            page = Timeline(
                session_id=r.session_id,
                student=q.student,
                bucket_s=r.bucket_s,
                start=r.rng.start,
                end=r.rng.end,
                items=buckets[offset : offset + limit],
                total=len(buckets),
                limit=limit,
                offset=offset,
            )
            return page.model_dump_json().encode()

        key = (
            "timeline",
            r.session_id,
            r.student_id,
            r.bucket_s,
            r.rng.t0,
            r.rng.t1,
            limit,
            offset,
        )
        return ctx.cache.get_or_compute(key, compute)


@router.get("/sessions/{session_id}/timeline", response_model=Timeline)
async def timeline(
    *,
    request: Request,
    session_id: SessionId,
    q: TimelineQueryDep,
    token: TokenDep,
    ctx: ContextDep,
    limit: Limit = 500,
    offset: Offset = 0,
) -> Response:
    """Class figure (or one student's scores) per bucket; empty buckets are omitted.

    Identical queries within ``EMO_HISTORY_CACHE_S`` (default 2 s) share one computed result.
    A class-figure page already served to the same token and URL in that window is answered
    from memory (``service.http.ServedPageCache``) without touching the database, so a token
    revoked or an access withdrawn takes effect on it at most that late.
    Per-student pages are checked and audited every time.
    """

    def page() -> Awaitable[bytes]:
        return run_in_threadpool(
            _timeline_body, ctx, token, session_id, q, limit=limit, offset=offset
        )

    key = served_key(request.scope)
    if q.student is not None or key is None:  # per-student pages: checked and audited each time
        body = await page()
    else:
        body = await ctx.cache.get_or_await(key, page)
    return Response(body, media_type="application/json")


@router.get("/sessions/{session_id}/timeline.csv", response_class=Response, responses=CSV)
def timeline_csv(
    session_id: SessionId,
    q: TimelineQueryDep,
    user: CurrentUser,
    db: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The whole timeline as CSV."""
    buckets = _buckets(db, _resolve_timeline(session_id, q, user, db, settings))
    name = f"timeline-{session_id}{'-' + q.student if q.student else ''}.csv"
    return _csv(hq.buckets_csv(buckets), name)


def _summary(session_id: str, user: CurrentUser, db: SessionDep) -> Summary:
    sess, classroom, access = require_session(db, user, session_id)
    mode = effective_mode(sess, classroom)
    visible = per_student_visible(access, mode)
    students = hq.student_shares(db, sess.id) if visible else []
    if visible:
        audit(db, user, "summary", classroom_id=classroom.id, session_id=sess.id)
        db.commit()
    return Summary(
        session_id=sess.id,
        privacy_mode=mode.value,
        per_student_visible=visible,
        class_share=hq.class_share(db, sess.id),
        students=students,
    )


@router.get("/sessions/{session_id}/summary", response_model=Summary)
def summary(session_id: SessionId, user: CurrentUser, db: SessionDep) -> Summary:
    """Time share of each emotion for the class, and per student when mode and role allow."""
    return _summary(session_id, user, db)


@router.get("/sessions/{session_id}/summary.csv", response_class=Response, responses=CSV)
def summary_csv(session_id: SessionId, user: CurrentUser, db: SessionDep) -> Response:
    result = _summary(session_id, user, db)
    return _csv(hq.shares_csv([result.class_share, *result.students]), f"summary-{session_id}.csv")


def _classroom_history(
    classroom_id: int,
    *,
    start: datetime | None,
    end: datetime | None,
    bucket: str,
    user: CurrentUser,
    db: SessionDep,
    settings: SettingsDep,
) -> tuple[int, hq.TimeRange, list[str], list[Bucket]]:
    classroom, _ = require_classroom(db, user, classroom_id)
    bucket_s = hq.parse_bucket(bucket)
    end = end or utcnow()
    rng = hq.validate_range(
        start or end - timedelta(days=7),
        end,
        max_days=settings.max_history_range_days,
        bucket_s=bucket_s,
        max_buckets=settings.max_buckets,
    )
    sessions, buckets = hq.classroom_timeline(db, classroom.id, rng, bucket_s)
    return bucket_s, rng, sessions, buckets


Start = Annotated[datetime | None, Query(description="default: end - 7 days")]
End = Annotated[datetime | None, Query(description="default: now")]
HistoryBucket = Annotated[str, Query(max_length=16, description="1h, 1d ...")]


@router.get("/classrooms/{classroom_id}/history", response_model=ClassroomHistory)
def classroom_history(
    *,
    classroom_id: ClassroomId,
    user: CurrentUser,
    db: SessionDep,
    settings: SettingsDep,
    start: Start = None,
    end: End = None,
    bucket: HistoryBucket = "1h",
    limit: Limit = 500,
    offset: Offset = 0,
) -> ClassroomHistory:
    """Class figure across sessions over a date range (aggregates only)."""
    bucket_s, rng, sessions, buckets = _classroom_history(
        classroom_id, start=start, end=end, bucket=bucket, user=user, db=db, settings=settings
    )
    return ClassroomHistory(
        classroom_id=classroom_id,
        bucket_s=bucket_s,
        start=rng.start,
        end=rng.end,
        session_ids=sessions,
        items=buckets[offset : offset + limit],
        total=len(buckets),
        limit=limit,
        offset=offset,
    )


@router.get("/classrooms/{classroom_id}/history.csv", response_class=Response, responses=CSV)
def classroom_history_csv(
    *,
    classroom_id: ClassroomId,
    user: CurrentUser,
    db: SessionDep,
    settings: SettingsDep,
    start: Start = None,
    end: End = None,
    bucket: HistoryBucket = "1h",
) -> Response:
    _, _, _, buckets = _classroom_history(
        classroom_id, start=start, end=end, bucket=bucket, user=user, db=db, settings=settings
    )
    return _csv(hq.buckets_csv(buckets), f"classroom-{classroom_id}-history.csv")


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

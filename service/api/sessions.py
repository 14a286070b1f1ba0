"""Class sessions: start (assign cameras to workers), stop, list, detail, change mode."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract import CameraAssignment
from service.access import effective_mode, require_classroom, require_session, visible_classroom_ids
from service.api.cameras import camera_public, seats_of
from service.control import CameraControl
from service.deps import ContextDep, CurrentUser, SessionDep, StaffUser
from service.errors import ConflictError, InvalidInputError, ServiceError
from service.privacy import stricter
from service.schemas.common import Limit, Offset, Page
from service.schemas.sessions import SessionCreate, SessionDetail, SessionPublic, SessionUpdate
from service.store.tables import Camera, Classroom, ClassSession, SessionCamera, utcnow

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/sessions", tags=["sessions"])
SessionId = Annotated[str, Path(min_length=1, max_length=64)]


def camera_ids_of(db: Session, session_id: str) -> list[str]:
    rows = db.scalars(
        select(SessionCamera.camera_id)
        .where(SessionCamera.session_id == session_id)
        .order_by(SessionCamera.camera_id)
    )
    return list(rows)


def session_public(db: Session, sess: ClassSession, classroom: Classroom) -> SessionPublic:
    return SessionPublic(
        id=sess.id,
        classroom_id=sess.classroom_id,
        title=sess.title,
        privacy_mode=effective_mode(sess, classroom),
        started_at=sess.started_at,
        ended_at=sess.ended_at,
        running=sess.ended_at is None,
        camera_ids=camera_ids_of(db, sess.id),
    )


def _assign(db: Session, control: CameraControl, sess: ClassSession, classroom: Classroom) -> None:
    mode = effective_mode(sess, classroom)
    for camera_id in camera_ids_of(db, sess.id):
        camera = db.get(Camera, camera_id)
        if camera is None:
            continue
        seats = {s.student: list(s.polygon) for s in seats_of(db, camera.id)}
        control.assign(
            CameraAssignment(
                camera_id=camera.id,
                url=camera.source_url,
                session_id=sess.id,
                privacy_mode=mode,
                fps=camera.fps,
                seats=seats,
            )
        )


def _pick_cameras(db: Session, classroom_id: int, wanted: list[str] | None) -> list[str]:
    owned = set(db.scalars(select(Camera.id).where(Camera.classroom_id == classroom_id)))
    chosen = sorted(owned) if wanted is None else list(dict.fromkeys(wanted))
    if not chosen:
        raise InvalidInputError(("body", "camera_ids"), f"classroom {classroom_id} has no cameras")
    foreign = [c for c in chosen if c not in owned]
    if foreign:
        raise InvalidInputError(
            ("body", "camera_ids"), f"cameras not in classroom {classroom_id}: {foreign}"
        )
    # lock the cameras' rows so two concurrent starts cannot both pass the busy check
    db.execute(select(Camera.id).where(Camera.id.in_(chosen)).with_for_update())
    busy = db.scalars(
        select(SessionCamera.camera_id)
        .join(ClassSession, ClassSession.id == SessionCamera.session_id)
        .where(SessionCamera.camera_id.in_(chosen), ClassSession.ended_at.is_(None))
    ).all()
    if busy:
        raise ConflictError(f"cameras already in a running session: {sorted(busy)}")
    return chosen


@router.post("", response_model=SessionPublic, status_code=status.HTTP_201_CREATED)
def start_session(
    body: SessionCreate, user: StaffUser, db: SessionDep, ctx: ContextDep
) -> SessionPublic:
    """Start a session: workers receive an assignment for each camera."""
    classroom, _ = require_classroom(db, user, body.classroom_id, write=True)
    cameras = _pick_cameras(db, classroom.id, body.camera_ids)
    mode = stricter(body.privacy_mode or classroom.privacy_mode, classroom.privacy_mode)
    sess = ClassSession(
        id=uuid.uuid4().hex,
        classroom_id=classroom.id,
        title=body.title,
        privacy_mode=mode.value,
        started_by=user.id,
        started_at=utcnow(),
    )
    db.add(sess)
    db.add_all(SessionCamera(session_id=sess.id, camera_id=c) for c in cameras)
    db.flush()
    try:
        _assign(db, ctx.control, sess, classroom)
    except ServiceError:
        db.rollback()
        for camera_id in cameras:
            _safe_unassign(ctx.control, camera_id)
        raise
    db.commit()
    logger.info("session %s started on cameras %s (%s)", sess.id, cameras, mode.value)
    return session_public(db, sess, classroom)


@router.get("", response_model=Page[SessionPublic])
def list_sessions(
    *,
    user: CurrentUser,
    db: SessionDep,
    classroom_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    running: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[SessionPublic]:
    query = select(ClassSession, Classroom).join(Classroom)
    if classroom_id is not None:
        require_classroom(db, user, classroom_id)
        query = query.where(ClassSession.classroom_id == classroom_id)
    visible = visible_classroom_ids(db, user)
    if visible is not None:
        query = query.where(ClassSession.classroom_id.in_(visible))
    if running is not None:
        ended = ClassSession.ended_at
        query = query.where(ended.is_(None) if running else ended.is_not(None))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.execute(
        query.order_by(ClassSession.started_at.desc(), ClassSession.id).limit(limit).offset(offset)
    )
    items = [session_public(db, s, c) for s, c in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{session_id}", response_model=SessionDetail)
def get_session(
    session_id: SessionId, user: CurrentUser, db: SessionDep, ctx: ContextDep
) -> SessionDetail:
    """Session with its cameras and each camera's worker-reported status."""
    sess, classroom, _ = require_session(db, user, session_id)
    public = session_public(db, sess, classroom)
    cameras = [c for c in (db.get(Camera, cid) for cid in public.camera_ids) if c is not None]
    statuses = ctx.control.status([c.id for c in cameras])
    detail = [camera_public(c, statuses.get(c.id)) for c in cameras]
    return SessionDetail(**public.model_dump(), cameras=detail)


@router.patch("/{session_id}", response_model=SessionPublic)
def update_session(
    session_id: SessionId, body: SessionUpdate, user: StaffUser, db: SessionDep, ctx: ContextDep
) -> SessionPublic:
    """Change title or privacy mode (never below the classroom's); workers are re-assigned."""
    sess, classroom, _ = require_session(db, user, session_id, write=True)
    if body.title is not None:
        sess.title = body.title
    if body.privacy_mode is not None:
        sess.privacy_mode = stricter(body.privacy_mode, classroom.privacy_mode).value
        if sess.ended_at is None:
            _assign(db, ctx.control, sess, classroom)
    db.commit()
    return session_public(db, sess, classroom)


@router.post("/{session_id}/stop", response_model=SessionPublic)
def stop_session(
    session_id: SessionId, user: StaffUser, db: SessionDep, ctx: ContextDep
) -> SessionPublic:
    """Stop: workers drop the cameras; stored data stays."""
    sess, classroom, _ = require_session(db, user, session_id, write=True)
    if sess.ended_at is not None:
        raise ConflictError(f"session {session_id!r} already stopped")
    sess.ended_at = utcnow()
    for camera_id in camera_ids_of(db, sess.id):
        ctx.control.unassign(camera_id)
    db.commit()
    return session_public(db, sess, classroom)


def _safe_unassign(control: CameraControl, camera_id: str) -> None:
    try:
        control.unassign(camera_id)
    except ServiceError as exc:
        logger.warning("could not unassign camera %s after a failed start: %s", camera_id, exc)

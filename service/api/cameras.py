"""Cameras (admin configures; the source URL is write-only) and their seat maps."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.access import require_classroom, visible_classroom_ids
from service.deps import AdminUser, ContextDep, SessionDep, StaffUser
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.schemas.classrooms import (
    CameraCreate,
    CameraPublic,
    CameraUpdate,
    SeatIn,
    SeatMapPublic,
    SeatMapPut,
)
from service.schemas.common import Limit, Offset, Page
from service.store.tables import Camera, Seat, Student, User

router = APIRouter(prefix="/cameras", tags=["cameras"])
CameraId = Annotated[str, Path(min_length=1, max_length=64)]


def redact(url: str) -> str:
    """``rtsp://user:pw@host:554/path?x`` -> ``rtsp://host:554``; files -> ``file``."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"
    if url.isdigit():
        return "webcam"
    return "file"


def camera_public(camera: Camera, status_: dict[str, object] | None = None) -> CameraPublic:
    return CameraPublic(
        id=camera.id,
        classroom_id=camera.classroom_id,
        name=camera.name,
        source=redact(camera.source_url),
        fps=camera.fps,
        created_at=camera.created_at,
        status=status_,
    )


def load_camera(db: Session, user: User, camera_id: str, *, write: bool = False) -> Camera:
    camera = db.get(Camera, camera_id)
    if camera is None:
        raise NotFoundError(f"camera {camera_id!r} not found")
    require_classroom(db, user, camera.classroom_id, write=write, per_student=True)
    return camera


@router.get("", response_model=Page[CameraPublic])
def list_cameras(
    *,
    user: StaffUser,
    db: SessionDep,
    ctx: ContextDep,
    classroom_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CameraPublic]:
    query = select(Camera)
    if classroom_id is not None:
        require_classroom(db, user, classroom_id)
        query = query.where(Camera.classroom_id == classroom_id)
    visible = visible_classroom_ids(db, user)
    if visible is not None:
        query = query.where(Camera.classroom_id.in_(visible))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    cameras = list(db.scalars(query.order_by(Camera.id).limit(limit).offset(offset)))
    statuses = ctx.control.status([c.id for c in cameras])
    items = [camera_public(c, statuses.get(c.id)) for c in cameras]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=CameraPublic, status_code=status.HTTP_201_CREATED)
def create_camera(body: CameraCreate, user: AdminUser, db: SessionDep) -> CameraPublic:
    require_classroom(db, user, body.classroom_id, write=True)
    camera_id = body.id or f"cam-{uuid.uuid4().hex[:12]}"
    if db.get(Camera, camera_id) is not None:
        raise ConflictError(f"camera id {camera_id!r} already exists")
    camera = Camera(
        id=camera_id,
        classroom_id=body.classroom_id,
        name=body.name,
        source_url=body.source_url,
        fps=body.fps,
    )
    db.add(camera)
    db.commit()
    return camera_public(camera)


@router.get("/{camera_id}", response_model=CameraPublic)
def get_camera(
    camera_id: CameraId, user: StaffUser, db: SessionDep, ctx: ContextDep
) -> CameraPublic:
    camera = load_camera(db, user, camera_id)
    return camera_public(camera, ctx.control.status([camera.id]).get(camera.id))


@router.patch("/{camera_id}", response_model=CameraPublic)
def update_camera(
    camera_id: CameraId, body: CameraUpdate, user: AdminUser, db: SessionDep
) -> CameraPublic:
    """Changes apply to the next session started on this camera."""
    camera = load_camera(db, user, camera_id, write=True)
    for field in ("name", "source_url", "fps"):
        value = getattr(body, field)
        if value is not None:
            setattr(camera, field, value)
    db.commit()
    return camera_public(camera)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_camera(camera_id: CameraId, user: AdminUser, db: SessionDep) -> None:
    camera = load_camera(db, user, camera_id, write=True)
    db.delete(camera)
    db.commit()


def seats_of(db: Session, camera_id: str) -> list[SeatIn]:
    rows = db.scalars(select(Seat).where(Seat.camera_id == camera_id).order_by(Seat.student_code))
    return [SeatIn(student=s.student_code, polygon=[(p[0], p[1]) for p in s.polygon]) for s in rows]


@router.get("/{camera_id}/seatmap", response_model=SeatMapPublic)
def get_seatmap(camera_id: CameraId, user: StaffUser, db: SessionDep) -> SeatMapPublic:
    camera = load_camera(db, user, camera_id)
    return SeatMapPublic(camera_id=camera.id, seats=seats_of(db, camera.id))


@router.put("/{camera_id}/seatmap", response_model=SeatMapPublic)
def put_seatmap(
    camera_id: CameraId, body: SeatMapPut, user: StaffUser, db: SessionDep
) -> SeatMapPublic:
    """Replace the seat map; every seat's student must exist in the camera's classroom."""
    camera = load_camera(db, user, camera_id, write=True)
    codes = [seat.student for seat in body.seats]
    known = set(
        db.scalars(
            select(Student.code).where(
                Student.classroom_id == camera.classroom_id, Student.code.in_(codes)
            )
        )
    )
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InvalidInputError(
            ("body", "seats"), f"students not in classroom {camera.classroom_id}: {unknown[:10]}"
        )
    db.execute(delete(Seat).where(Seat.camera_id == camera.id))
    for seat in body.seats:
        polygon = [[float(x), float(y)] for x, y in seat.polygon]
        db.add(Seat(camera_id=camera.id, student_code=seat.student, polygon=polygon))
    db.commit()
    return SeatMapPublic(camera_id=camera.id, seats=seats_of(db, camera.id))

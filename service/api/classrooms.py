"""Classrooms: admins create and configure them; teachers see their own; analysts list all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import func, select

from service.access import require_classroom, visible_classroom_ids
from service.deps import AdminUser, CurrentUser, SessionDep
from service.errors import ConflictError
from service.schemas.classrooms import ClassroomCreate, ClassroomPublic, ClassroomUpdate
from service.schemas.common import Limit, Offset, Page
from service.store.tables import Classroom

router = APIRouter(prefix="/classrooms", tags=["classrooms"])
ClassroomId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=Page[ClassroomPublic])
def list_classrooms(
    user: CurrentUser, db: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Page[ClassroomPublic]:
    query = select(Classroom)
    visible = visible_classroom_ids(db, user)
    if visible is not None:
        query = query.where(Classroom.id.in_(visible))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Classroom.id).limit(limit).offset(offset))
    items = [ClassroomPublic.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=ClassroomPublic, status_code=status.HTTP_201_CREATED)
def create_classroom(body: ClassroomCreate, _: AdminUser, db: SessionDep) -> Classroom:
    if db.scalar(select(Classroom.id).where(Classroom.name == body.name)) is not None:
        raise ConflictError(f"classroom name {body.name!r} already exists")
    classroom = Classroom(name=body.name, privacy_mode=body.privacy_mode.value)
    db.add(classroom)
    db.commit()
    return classroom


@router.get("/{classroom_id}", response_model=ClassroomPublic)
def get_classroom(classroom_id: ClassroomId, user: CurrentUser, db: SessionDep) -> Classroom:
    return require_classroom(db, user, classroom_id)[0]


@router.patch("/{classroom_id}", response_model=ClassroomPublic)
def update_classroom(
    classroom_id: ClassroomId, body: ClassroomUpdate, user: AdminUser, db: SessionDep
) -> Classroom:
    classroom, _ = require_classroom(db, user, classroom_id, write=True)
    if body.name is not None and body.name != classroom.name:
        if db.scalar(select(Classroom.id).where(Classroom.name == body.name)) is not None:
            raise ConflictError(f"classroom name {body.name!r} already exists")
        classroom.name = body.name
    if body.privacy_mode is not None:
        classroom.privacy_mode = body.privacy_mode.value
    db.commit()
    return classroom


@router.delete("/{classroom_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_classroom(classroom_id: ClassroomId, user: AdminUser, db: SessionDep) -> None:
    """Deletes the classroom with its cameras, students, sessions and stored scores."""
    classroom, _ = require_classroom(db, user, classroom_id, write=True)
    db.delete(classroom)
    db.commit()

"""Students: pseudonymous codes, optional display names, opt-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.access import require_classroom
from service.deps import CurrentUser, SessionDep, StaffUser
from service.errors import ConflictError, NotFoundError
from service.schemas.classrooms import StudentCreate, StudentPublic, StudentUpdate
from service.schemas.common import Limit, Offset, Page
from service.store.tables import Student, User

router = APIRouter(prefix="/students", tags=["students"])
StudentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _load(db: Session, user: User, student_id: int, *, write: bool = False) -> Student:
    student = db.get(Student, student_id)
    if student is None:
        raise NotFoundError(f"student {student_id} not found")
    require_classroom(db, user, student.classroom_id, write=write, per_student=True)
    return student


@router.get("", response_model=Page[StudentPublic])
def list_students(
    user: CurrentUser,
    db: SessionDep,
    classroom_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[StudentPublic]:
    """The roster of one classroom (needs per-student access to it)."""
    require_classroom(db, user, classroom_id, per_student=True)
    query = select(Student).where(Student.classroom_id == classroom_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(Student.code).limit(limit).offset(offset))
    items = [StudentPublic.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=StudentPublic, status_code=status.HTTP_201_CREATED)
def create_student(body: StudentCreate, user: StaffUser, db: SessionDep) -> Student:
    require_classroom(db, user, body.classroom_id, write=True)
    exists = db.scalar(
        select(Student.id).where(
            Student.classroom_id == body.classroom_id, Student.code == body.code
        )
    )
    if exists is not None:
        raise ConflictError(f"student code {body.code!r} exists in classroom {body.classroom_id}")
    student = Student(
        classroom_id=body.classroom_id,
        code=body.code,
        display_name=body.display_name,
        opted_out=body.opted_out,
    )
    db.add(student)
    db.commit()
    return student


@router.get("/{student_id}", response_model=StudentPublic)
def get_student(student_id: StudentId, user: CurrentUser, db: SessionDep) -> Student:
    return _load(db, user, student_id)


@router.patch("/{student_id}", response_model=StudentPublic)
def update_student(
    student_id: StudentId, body: StudentUpdate, user: StaffUser, db: SessionDep
) -> Student:
    """Opting out stops storage of this student's samples from the next ingested frame."""
    student = _load(db, user, student_id, write=True)
    if body.display_name is not None:
        student.display_name = body.display_name
    if body.opted_out is not None:
        student.opted_out = body.opted_out
    db.commit()
    return student


@router.delete("/{student_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_student(student_id: StudentId, user: StaffUser, db: SessionDep) -> None:
    """Deletes the student and every stored sample of them."""
    student = _load(db, user, student_id, write=True)
    db.delete(student)
    db.commit()

"""Users and classroom grants (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.deps import AdminUser, SessionDep
from service.errors import ConflictError, InvalidInputError, NotFoundError
from service.schemas.common import Limit, Offset, Page
from service.schemas.users import GrantPublic, GrantPut, UserCreate, UserPublic, UserUpdate
from service.security import hash_password
from service.store.tables import Classroom, ClassroomGrant, User

router = APIRouter(prefix="/users", tags=["users"])
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ClassroomId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def create_user(db: Session, username: str, password: str, role: str) -> User:
    """Insert a user (flushes); ConflictError when the name is taken."""
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"username {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
    db.add(user)
    db.flush()
    return user


@router.get("", response_model=Page[UserPublic])
def list_users(
    _: AdminUser, db: SessionDep, limit: Annotated[Limit, Query()] = 100, offset: Offset = 0
) -> Page[UserPublic]:
    total = db.scalar(select(func.count()).select_from(User)) or 0
    rows = db.scalars(select(User).order_by(User.id).limit(limit).offset(offset))
    items = [UserPublic.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def post_user(body: UserCreate, _: AdminUser, db: SessionDep) -> User:
    user = create_user(db, body.username, body.password.get_secret_value(), body.role.value)
    db.commit()
    return user


def _get(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    return user


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: UserId, _: AdminUser, db: SessionDep) -> User:
    return _get(db, user_id)


@router.patch("/{user_id}", response_model=UserPublic)
def patch_user(user_id: UserId, body: UserUpdate, admin: AdminUser, db: SessionDep) -> User:
    user = _get(db, user_id)
    if user.id == admin.id and (body.disabled or (body.role and body.role != "admin")):
        raise InvalidInputError(("body", "role"), "an admin may not demote or disable itself")
    if body.password is not None:
        user.password_hash = hash_password(body.password.get_secret_value())
    if body.role is not None:
        user.role = body.role.value
    if body.disabled is not None:
        user.disabled = body.disabled
    db.commit()
    return user


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: UserId, admin: AdminUser, db: SessionDep) -> None:
    user = _get(db, user_id)
    if user.id == admin.id:
        raise InvalidInputError(("path", "user_id"), "an admin may not delete itself")
    db.delete(user)
    db.commit()


@router.get("/{user_id}/grants", response_model=list[GrantPublic])
def list_grants(user_id: UserId, _: AdminUser, db: SessionDep) -> list[ClassroomGrant]:
    _get(db, user_id)
    return list(db.scalars(select(ClassroomGrant).where(ClassroomGrant.user_id == user_id)))


@router.put("/{user_id}/grants/{classroom_id}", response_model=GrantPublic)
def put_grant(
    user_id: UserId, classroom_id: ClassroomId, body: GrantPut, _: AdminUser, db: SessionDep
) -> ClassroomGrant:
    """Teacher: makes the classroom theirs. Analyst: ``per_student`` opens per-student history."""
    _get(db, user_id)
    if db.get(Classroom, classroom_id) is None:
        raise NotFoundError(f"classroom {classroom_id} not found")
    grant = db.get(ClassroomGrant, (user_id, classroom_id))
    if grant is None:
        grant = ClassroomGrant(user_id=user_id, classroom_id=classroom_id)
        db.add(grant)
    grant.per_student = body.per_student
    try:
        db.commit()
    except IntegrityError as exc:  # concurrent delete of user or classroom
        db.rollback()
        raise ConflictError(f"grant could not be stored: {exc.orig}") from exc
    return grant


@router.delete("/{user_id}/grants/{classroom_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_grant(user_id: UserId, classroom_id: ClassroomId, _: AdminUser, db: SessionDep) -> None:
    grant = db.get(ClassroomGrant, (user_id, classroom_id))
    if grant is None:
        raise NotFoundError(f"user {user_id} has no grant on classroom {classroom_id}")
    db.delete(grant)
    db.commit()

"""Who may see and change what: roles, classroom grants, privacy modes, and the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract import PrivacyMode
from service.errors import ForbiddenError, NotFoundError
from service.privacy import stricter
from service.schemas.users import Role
from service.store.tables import AuditEntry, Classroom, ClassroomGrant, ClassSession, User


@dataclass(frozen=True)
class Access:
    """What one user may do with one classroom."""

    read: bool
    write: bool
    per_student: bool


NONE = Access(read=False, write=False, per_student=False)


def classroom_access(db: Session, user: User, classroom_id: int) -> Access:
    """admin: all; teacher: own (granted) classrooms; analyst: read, per-student if granted."""
    if user.role == Role.ADMIN:
        return Access(read=True, write=True, per_student=True)
    grant = db.get(ClassroomGrant, (user.id, classroom_id))
    if user.role == Role.TEACHER:
        return Access(True, True, True) if grant is not None else NONE
    if user.role == Role.ANALYST:
        return Access(read=True, write=False, per_student=bool(grant and grant.per_student))
    return NONE


def visible_classroom_ids(db: Session, user: User) -> set[int] | None:
    """Classrooms ``user`` may list (None: all)."""
    if user.role in (Role.ADMIN, Role.ANALYST):
        return None
    rows = db.scalars(select(ClassroomGrant.classroom_id).where(ClassroomGrant.user_id == user.id))
    return set(rows)


def require_classroom(
    db: Session, user: User, classroom_id: int, *, write: bool = False, per_student: bool = False
) -> tuple[Classroom, Access]:
    """The classroom, or 404 when it does not exist / 403 when ``user`` may not do this."""
    classroom = db.get(Classroom, classroom_id)
    if classroom is None:
        raise NotFoundError(f"classroom {classroom_id} not found")
    access = classroom_access(db, user, classroom_id)
    if not access.read:
        raise ForbiddenError(f"user {user.username!r} has no access to classroom {classroom_id}")
    if write and not access.write:
        raise ForbiddenError(f"user {user.username!r} may not change classroom {classroom_id}")
    if per_student and not access.per_student:
        raise ForbiddenError(
            f"user {user.username!r} may not read per-student data of classroom {classroom_id}"
        )
    return classroom, access


def require_session(
    db: Session, user: User, session_id: str, *, write: bool = False
) -> tuple[ClassSession, Classroom, Access]:
    """The session and its classroom, or 404 / 403."""
    sess = db.get(ClassSession, session_id)
    if sess is None:
        raise NotFoundError(f"session {session_id!r} not found")
    classroom, access = require_classroom(db, user, sess.classroom_id, write=write)
    return sess, classroom, access


def effective_mode(sess: ClassSession, classroom: Classroom) -> PrivacyMode:
    """The stricter of the session's and the classroom's current modes."""
    return stricter(sess.privacy_mode, classroom.privacy_mode)


def per_student_visible(access: Access, mode: PrivacyMode) -> bool:
    """Per-student data is shown only in ``per_student`` mode to users allowed to see it."""
    return access.per_student and mode == PrivacyMode.PER_STUDENT


def require_per_student(user: User, access: Access, mode: PrivacyMode, session_id: str) -> None:
    """403 naming why per-student data of ``session_id`` is not visible."""
    if mode != PrivacyMode.PER_STUDENT:
        raise ForbiddenError(f"session {session_id!r} is in {mode.value} mode: no per-student data")
    if not access.per_student:
        raise ForbiddenError(
            f"user {user.username!r} ({user.role}) may see only aggregates of this classroom"
        )


def audit(
    db: Session,
    user: User,
    action: str,
    *,
    classroom_id: int | None,
    session_id: str | None = None,
    student_code: str | None = None,
) -> None:
    """Record one per-student read (committed with the caller's transaction)."""
    db.add(
        AuditEntry(
            user_id=user.id,
            username=user.username,
            action=action,
            classroom_id=classroom_id,
            session_id=session_id,
            student_code=student_code,
        )
    )

"""ORM tables (SQLAlchemy 2). API schemas live in ``service.schemas``, never here.

Times of emotion samples and class aggregates are integer Unix seconds (``t``): samples are
downsampled to one per student per second, the integer is the idempotency key, and bucketing is
plain integer arithmetic on Postgres and SQLite alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention (for Alembic)."""

    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginFailure(Base):
    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Classroom(Base):
    __tablename__ = "classrooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    privacy_mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClassroomGrant(Base):
    """Teacher: own classroom. Analyst: ``per_student`` grants per-student history."""

    __tablename__ = "classroom_grants"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True
    )
    per_student: Mapped[bool] = mapped_column(Boolean, default=False)


class Camera(Base):
    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    source_url: Mapped[str] = mapped_column(String(2048))
    fps: Mapped[float] = mapped_column(Float, default=2.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Seat(Base):
    """One seat of a camera's seat map: the student code the worker reports, and a polygon."""

    __tablename__ = "seats"

    camera_id: Mapped[str] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    student_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    polygon: Mapped[list[list[float]]] = mapped_column(JSON)


class Student(Base):
    __tablename__ = "students"
    __table_args__ = (UniqueConstraint("classroom_id", "code", name="uq_students_classroom_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClassSession(Base):
    __tablename__ = "class_sessions"
    __table_args__ = (Index("ix_class_sessions_classroom_started", "classroom_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    classroom_id: Mapped[int] = mapped_column(ForeignKey("classrooms.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="")
    privacy_mode: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class SessionCamera(Base):
    __tablename__ = "session_cameras"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("class_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    camera_id: Mapped[str] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class EmotionSample(Base):
    """One student, one second: the worker's smoothed distribution (first frame of the second)."""

    __tablename__ = "emotion_samples"
    __table_args__ = (Index("ix_emotion_samples_t", "t"),)

    session_id: Mapped[str] = mapped_column(
        ForeignKey("class_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    student_id: Mapped[int] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True
    )
    t: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    joy: Mapped[float] = mapped_column(Float)
    focus: Mapped[float] = mapped_column(Float)
    thinking: Mapped[float] = mapped_column(Float)
    boredom: Mapped[float] = mapped_column(Float)
    confusion: Mapped[float] = mapped_column(Float)
    drowsy: Mapped[float] = mapped_column(Float)
    dominant: Mapped[int] = mapped_column(SmallInteger)


class ClassAggregateRow(Base):
    """One camera of one session, one second: face count and mean (NULL when hidden/none)."""

    __tablename__ = "class_aggregates"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("class_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    t: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    face_count: Mapped[int] = mapped_column(Integer)
    joy: Mapped[float | None] = mapped_column(Float, nullable=True)
    focus: Mapped[float | None] = mapped_column(Float, nullable=True)
    thinking: Mapped[float | None] = mapped_column(Float, nullable=True)
    boredom: Mapped[float | None] = mapped_column(Float, nullable=True)
    confusion: Mapped[float | None] = mapped_column(Float, nullable=True)
    drowsy: Mapped[float | None] = mapped_column(Float, nullable=True)
    dominant: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)


class AuditEntry(Base):
    """Who read which per-student data, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    classroom_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    student_code: Mapped[str | None] = mapped_column(String(64), nullable=True)

"""Users, login tokens, grants and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

Username = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
]


class Role(StrEnum):
    ADMIN = "admin"
    TEACHER = "teacher"
    ANALYST = "analyst"


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"username": "admin", "password": "correct horse"}},
    )

    username: str = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1, max_length=256)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"username": "ms.lee", "password": "a long passphrase", "role": "teacher"}
        },
    )

    username: Username
    password: SecretStr = Field(min_length=8, max_length=256)
    role: Role


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"disabled": True}})

    password: SecretStr | None = Field(default=None, min_length=8, max_length=256)
    role: Role | None = None
    disabled: bool | None = None


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class GrantPut(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"per_student": True}})

    per_student: bool = Field(
        default=False, description="analysts: may read per-student history of this classroom"
    )


class GrantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: int
    classroom_id: int
    per_student: bool


class AuditPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    user_id: int | None
    username: str
    action: str
    classroom_id: int | None
    session_id: str | None
    student_code: str | None

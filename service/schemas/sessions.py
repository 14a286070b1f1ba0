"""Class sessions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.classrooms import CameraPublic
from service.schemas.common import Code, PrivacyMode


class SessionCreate(BaseModel):
    """Start a session: tells the workers to analyse the cameras."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"classroom_id": 1, "title": "Maths 3B", "privacy_mode": "aggregate_only"}
        },
    )

    classroom_id: int = Field(ge=1)
    title: str = Field(default="", max_length=200)
    camera_ids: list[Code] | None = Field(
        default=None, max_length=32, description="default: every camera of the classroom"
    )
    privacy_mode: PrivacyMode | None = Field(
        default=None, description="default: the classroom's; never less strict than it"
    )


class SessionUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"privacy_mode": "off"}}
    )

    title: str | None = Field(default=None, max_length=200)
    privacy_mode: PrivacyMode | None = None


class SessionPublic(BaseModel):
    id: str
    classroom_id: int
    title: str
    privacy_mode: PrivacyMode = Field(
        description="effective: the stricter of session and classroom"
    )
    started_at: datetime
    ended_at: datetime | None
    running: bool
    camera_ids: list[str]


class SessionDetail(SessionPublic):
    cameras: list[CameraPublic]

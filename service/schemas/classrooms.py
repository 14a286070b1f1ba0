"""Classrooms, cameras, seat maps and students."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from service.schemas.common import Code, Name, PrivacyMode

CameraUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Point = tuple[Annotated[float, Field(ge=0, le=100_000)], Annotated[float, Field(ge=0, le=100_000)]]


class ClassroomCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"name": "Room 101", "privacy_mode": "per_student"}},
    )

    name: Name
    privacy_mode: PrivacyMode = PrivacyMode.AGGREGATE_ONLY


class ClassroomUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"privacy_mode": "off"}}
    )

    name: Name | None = None
    privacy_mode: PrivacyMode | None = None


class ClassroomPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    privacy_mode: PrivacyMode
    created_at: datetime


class CameraCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "id": "room101-front",
                "classroom_id": 1,
                "name": "front",
                "source_url": "rtsp://user:secret@10.0.0.5/stream1",
                "fps": 2.0,
            }
        },
    )

    id: Code | None = Field(default=None, description="wire camera_id; generated when absent")
    classroom_id: int = Field(ge=1)
    name: Name
    source_url: CameraUrl = Field(description="write-only: never returned (may hold credentials)")
    fps: float = Field(default=2.0, gt=0.0, le=30.0)


class CameraUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"fps": 1.0}})

    name: Name | None = None
    source_url: CameraUrl | None = None
    fps: float | None = Field(default=None, gt=0.0, le=30.0)


class CameraPublic(BaseModel):
    id: str
    classroom_id: int
    name: str
    source: str = Field(description="scheme and host of the source; credentials removed")
    fps: float
    created_at: datetime
    status: dict[str, object] | None = Field(
        default=None, description="worker-reported status (at least 'state'), when known"
    )


class SeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    student: Code = Field(description="student code the worker reports for this seat")
    polygon: list[Point] = Field(min_length=3, max_length=64)


class SeatMapPut(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "seats": [{"student": "s01", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}]
            }
        },
    )

    seats: list[SeatIn] = Field(max_length=500)

    @field_validator("seats")
    @classmethod
    def _unique(cls, seats: list[SeatIn]) -> list[SeatIn]:
        codes = [s.student for s in seats]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"each student may have one seat per camera; repeated: {dupes}")
        return seats


class SeatMapPublic(BaseModel):
    camera_id: str
    seats: list[SeatIn]


class StudentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"classroom_id": 1, "code": "s01", "opted_out": False}},
    )

    classroom_id: int = Field(ge=1)
    code: Code = Field(description="pseudonymous code; the seat map uses it")
    display_name: Name | None = None
    opted_out: bool = False


class StudentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"opted_out": True}})

    display_name: Name | None = None
    opted_out: bool | None = None


class StudentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    classroom_id: int
    code: str
    display_name: str | None
    opted_out: bool
    created_at: datetime

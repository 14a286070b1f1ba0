"""Timeline, summary and classroom history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.schemas.common import ProbsOut


class Bucket(BaseModel):
    start: datetime
    samples: int = Field(description="seconds with data in this bucket")
    face_count: float | None = Field(description="mean faces per second (class timeline)")
    mean: ProbsOut | None = Field(description="None when hidden (k-anonymity) or no face seen")


class Timeline(BaseModel):
    session_id: str
    student: str | None
    bucket_s: int
    start: datetime
    end: datetime
    items: list[Bucket]
    total: int
    limit: int
    offset: int


class EmotionShare(BaseModel):
    subject: str = Field(description="'class' or a student code")
    seconds: int
    share: ProbsOut = Field(description="fraction of seconds each emotion was dominant")


class Summary(BaseModel):
    session_id: str
    privacy_mode: str
    per_student_visible: bool
    class_share: EmotionShare
    students: list[EmotionShare]


class ClassroomHistory(BaseModel):
    classroom_id: int
    bucket_s: int
    start: datetime
    end: datetime
    session_ids: list[str]
    items: list[Bucket]
    total: int
    limit: int
    offset: int

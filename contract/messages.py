"""Messages on the wire between workers and the service.

A worker publishes one :class:`FrameMessage` per analysed frame to the Redis stream
``contract.keys.FRAMES_STREAM`` (field ``data`` = the model's JSON). Frames and face crops are
never part of any message.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.labels import LABELS

Prob = Annotated[float, Field(ge=0.0, le=1.0)]


class PrivacyMode(StrEnum):
    """What may be stored and shown for a session."""

    PER_STUDENT = "per_student"
    AGGREGATE_ONLY = "aggregate_only"
    OFF = "off"


class Probs(BaseModel):
    """A distribution over the six labels (keys in ``contract.LABELS`` order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    joy: Prob
    focus: Prob
    thinking: Prob
    boredom: Prob
    confusion: Prob
    drowsy: Prob

    @classmethod
    def from_sequence(cls, values: list[float] | tuple[float, ...]) -> Probs:
        """Build from values in label order; raises ValueError on a wrong length."""
        if len(values) != len(LABELS):
            raise ValueError(f"expected {len(LABELS)} probabilities, got {len(values)}")
        return cls(**{label: float(v) for label, v in zip(LABELS, values, strict=True)})

    def as_list(self) -> list[float]:
        """Values in label order."""
        return [float(getattr(self, label)) for label in LABELS]

    def dominant(self) -> str:
        """The label with the highest probability."""
        values = self.as_list()
        return LABELS[values.index(max(values))]


class FaceScore(BaseModel):
    """One face in one analysed frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_id: int = Field(ge=0, description="Tracker id, stable across frames of one camera")
    student: str | None = Field(
        default=None, max_length=64, description="Pseudonymous seat code from the seat map"
    )
    box: tuple[float, float, float, float] = Field(
        description="x1, y1, x2, y2 in source-frame pixels"
    )
    probs: Probs
    smoothed: Probs
    det_prob: Prob


class ClassAggregate(BaseModel):
    """Class-level figure for one frame: mean smoothed distribution over the faces seen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    face_count: int = Field(ge=0)
    mean: Probs | None = Field(default=None, description="None when no face was seen")


class FrameMessage(BaseModel):
    """Everything a worker says about one analysed frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(default=1, description="Contract version")
    camera_id: str = Field(min_length=1, max_length=64)
    session_id: str | None = Field(default=None, max_length=64)
    worker_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0, description="Per-camera, per-source-run frame counter")
    ts: datetime = Field(description="Capture time (UTC, timezone-aware)")
    t: float = Field(ge=0.0, description="Seconds since the start of the source (video time)")
    faces: list[FaceScore] = Field(default_factory=list, max_length=512)
    aggregate: ClassAggregate

    @model_validator(mode="after")
    def _aware(self) -> FrameMessage:
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware (UTC)")
        return self

    @property
    def message_key(self) -> str:
        """Idempotency key: the same frame redelivered yields the same key."""
        return f"{self.camera_id}:{self.ts.isoformat()}:{self.seq}"


class CameraAssignment(BaseModel):
    """What the service tells workers to analyse (one per camera, in CAMERAS_HASH)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    camera_id: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, description="file path, webcam index, rtsp:// or http(s)://")
    session_id: str | None = None
    privacy_mode: PrivacyMode = PrivacyMode.PER_STUDENT
    fps: float = Field(default=2.0, gt=0.0, le=30.0)
    #: seat code -> polygon [[x, y], ...] in frame pixels (a rectangle is 4 points).
    seats: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)

"""Frozen dataclasses passed between the worker's stages (no stage imports another)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame of one camera; never published or written anywhere."""

    camera_id: str
    index: int  # frame counter of the source run (every decoded frame, analysed or not)
    t: float  # seconds since the start of the source (video time for files)
    ts: datetime  # capture time, UTC
    captured: float  # time.monotonic() at capture, for frame -> publish latency
    image: np.ndarray  # (H, W, 3) uint8 BGR


@dataclass(frozen=True)
class FaceBox:
    """A detected face in source-frame pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    prob: float

    @property
    def side(self) -> float:
        """The longer side of the box."""
        return max(self.x2 - self.x1, self.y2 - self.y1)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre point (x, y)."""
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        """x1, y1, x2, y2."""
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True, eq=False)
class Detections:
    """All faces found in one frame (the detection stage's output)."""

    frame: Frame
    boxes: tuple[FaceBox, ...]
    full: bool  # True when the whole frame was searched, False for a tracking-guided pass


@dataclass(frozen=True)
class EmotionScores:
    """The model's softmax output for one face, in contract.LABELS order."""

    probs: tuple[float, ...]


@dataclass(frozen=True)
class TrackedFace:
    """A face with its stable track id and, when seated, its pseudonymous student code."""

    track_id: int
    box: FaceBox
    student: str | None = None


@dataclass(frozen=True)
class CameraState:
    """A snapshot of one camera's source, for status and metrics."""

    camera_id: str
    state: str
    reconnects: int
    frames_read: int
    frames_dropped: int
    last_error: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

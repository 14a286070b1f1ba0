"""Tracking: Hungarian IoU matching (scipy) with ids that survive short occlusions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from worker.geometry import iou
from worker.types import FaceBox, TrackedFace

logger = logging.getLogger(__name__)


class Tracker(Protocol):
    """Gives each face of a camera's frame a track id that is stable across frames."""

    def update(self, boxes: list[FaceBox], t: float) -> list[TrackedFace]: ...

    def reset(self) -> None: ...


@dataclass
class _Track:
    track_id: int
    box: FaceBox
    last_t: float
    hits: int = 1


class IouTracker:
    """Optimal one-to-one IoU assignment; unmatched tracks live ``max_age_s`` (occlusions)."""

    def __init__(self, iou_min: float = 0.3, max_age_s: float = 3.0) -> None:
        self.iou_min = iou_min
        self.max_age_s = max_age_s
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def next_id(self) -> int:
        """Ids handed out so far (= number of distinct tracks)."""
        return self._next_id

    def reset(self) -> None:
        """Forget every track (a new source run, or the frame size changed)."""
        self._tracks = []

    def update(self, boxes: list[FaceBox], t: float) -> list[TrackedFace]:
        """Match ``boxes`` to live tracks; returns one TrackedFace per box, in box order."""
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= self.max_age_s]
        ids: list[int | None] = [None] * len(boxes)
        if boxes and self._tracks:
            cost = np.ones((len(boxes), len(self._tracks)))  # (detections, tracks) 1 - IoU
            for i, box in enumerate(boxes):
                for j, tr in enumerate(self._tracks):
                    cost[i, j] = 1.0 - iou(box, tr.box)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if 1.0 - cost[i, j] >= self.iou_min:
                    tr = self._tracks[j]
                    tr.box, tr.last_t, tr.hits = boxes[i], t, tr.hits + 1
                    ids[i] = tr.track_id
        for i, box in enumerate(boxes):
            if ids[i] is None:
                self._tracks.append(_Track(self._next_id, box, t))
                ids[i] = self._next_id
                self._next_id += 1
        return [
            TrackedFace(track_id=int(tid or 0), box=b) for tid, b in zip(ids, boxes, strict=True)
        ]

"""The live event: one analysed frame of a session, as stored (privacy rules already applied)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contract import LABELS


@dataclass(frozen=True)
class LiveEvent:
    """Class aggregate (``mean`` None when hidden or no face) and per-student smoothed scores.

    ``students`` is empty unless the session's mode is ``per_student``; opted-out students are
    never in it. ``sent`` is the wall-clock time ingest published it (for latency measurement).
    """

    session_id: str
    camera_id: str
    ts: str
    face_count: int
    mean: tuple[float, ...] | None
    students: dict[str, tuple[float, ...]] = field(default_factory=dict)
    hidden: bool = False
    sent: float = 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "session_id": self.session_id,
                "camera_id": self.camera_id,
                "ts": self.ts,
                "face_count": self.face_count,
                "mean": list(self.mean) if self.mean is not None else None,
                "students": {k: list(v) for k, v in self.students.items()},
                "hidden": self.hidden,
                "sent": self.sent,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> LiveEvent:
        data = json.loads(raw)
        mean = data.get("mean")
        return cls(
            session_id=str(data["session_id"]),
            camera_id=str(data["camera_id"]),
            ts=str(data["ts"]),
            face_count=int(data["face_count"]),
            mean=tuple(float(v) for v in mean) if mean is not None else None,
            students={k: tuple(float(x) for x in v) for k, v in data["students"].items()},
            hidden=bool(data.get("hidden", False)),
            sent=float(data.get("sent", 0.0)),
        )

    def render(self, *, per_student: bool) -> dict[str, Any]:
        """What a client receives; per-student scores only when ``per_student`` is allowed."""
        out: dict[str, Any] = {
            "type": "frame",
            "session_id": self.session_id,
            "camera_id": self.camera_id,
            "ts": self.ts,
            "face_count": self.face_count,
            "class": _probs(self.mean),
            "hidden": self.hidden,
            "sent": self.sent,
        }
        if per_student:
            out["students"] = {code: _probs(v) for code, v in self.students.items()}
        return out


def _probs(values: tuple[float, ...] | None) -> dict[str, float] | None:
    if values is None:
        return None
    return dict(zip(LABELS, values, strict=True))

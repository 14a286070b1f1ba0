"""Seat map: polygons in frame pixels -> pseudonymous student codes (no biometrics involved).

A face belongs to the seat whose polygon contains its box centre; when two faces fall in one
seat, the seat goes to the more probable detection and the other keeps an anonymous track id.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from worker.errors import ConfigError
from worker.types import TrackedFace

logger = logging.getLogger(__name__)

Polygon = list[tuple[float, float]]


def point_in_polygon(x: float, y: float, polygon: Polygon) -> bool:
    """Ray casting; points on an edge count as inside for the lower/left edges."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


class SeatMap:
    """Seat code -> polygon (a rectangle is 4 points)."""

    def __init__(self, seats: dict[str, list[tuple[float, float]]]) -> None:
        for code, poly in seats.items():
            if not code or len(code) > 64:
                raise ConfigError(f"seat code {code!r} must be 1-64 characters")
            if len(poly) < 3:
                raise ConfigError(f"seat {code!r} polygon needs >= 3 points, got {len(poly)}")
        self.seats = {code: [(float(x), float(y)) for x, y in poly] for code, poly in seats.items()}

    @classmethod
    def load(cls, path: Path) -> SeatMap:
        """Read ``{"seat code": [[x, y], ...], ...}`` from a JSON file."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"seat map {path} not found") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"seat map {path} is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"seat map {path} must be an object of seat code -> polygon")
        try:
            seats = {str(k): [(float(p[0]), float(p[1])) for p in v] for k, v in raw.items()}
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"seat map {path}: each seat must be a list of [x, y] points"
            ) from exc
        return cls(seats)

    def seat_of(self, x: float, y: float) -> str | None:
        """The first seat containing the point, or None."""
        for code, poly in self.seats.items():
            if point_in_polygon(x, y, poly):
                return code
        return None

    def assign(self, faces: list[TrackedFace]) -> list[TrackedFace]:
        """Faces with ``student`` set from their seat (one face per seat)."""
        best: dict[str, int] = {}
        for i, face in enumerate(faces):
            code = self.seat_of(*face.box.centre)
            if code is not None and (
                code not in best or face.box.prob > faces[best[code]].box.prob
            ):
                best[code] = i
        student = {i: code for code, i in best.items()}
        return [
            TrackedFace(face.track_id, face.box, student.get(i)) for i, face in enumerate(faces)
        ]

"""Box geometry shared by the stages: IoU, squares around a box, padded square crops."""

from __future__ import annotations

import cv2
import numpy as np

from worker.types import FaceBox

Square = tuple[float, float, float, float]


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def square(box: FaceBox, scale: float = 1.0) -> Square:
    """The square of ``scale`` x the box's longer side around the box centre."""
    side = max(box.x2 - box.x1, box.y2 - box.y1) * scale
    cx, cy = (box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0
    return (cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0)


def crop_square(image: np.ndarray, sq: Square, size: int) -> np.ndarray:
    """Crop a square (black outside the frame) and resize it to ``size`` x ``size``."""
    x1, y1 = round(sq[0]), round(sq[1])
    side = max(1, round(sq[2] - sq[0]))
    h, w = image.shape[:2]
    out = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)

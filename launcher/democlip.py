"""A demo "classroom" clip with real faces that any machine can make, plus its seat map.

With the shared data present (``../shared/data`` or ``EMO_DATA_DIR``) the clip tiles real
webcam frames of several people; otherwise it places augmented copies of scikit-image's
astronaut photograph (Eileen Collins, NASA, public domain) in six seats. Seats are drawn with a
small per-frame drift so that tracking has something to do.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worker.gallery import GalleryError, build_gallery

logger = logging.getLogger(__name__)

FRAME_W, FRAME_H = 1280, 720
COLS, ROWS = 3, 2
FPS = 10
SECONDS = 12


@dataclass(frozen=True)
class DemoClip:
    """A written clip and the seat map that matches it."""

    video: Path
    seats: dict[str, list[tuple[float, float]]]
    origin: str  # "shared-frames" or "astronaut"


def _astronaut_tiles(tile_w: int, tile_h: int) -> list[np.ndarray]:
    """Six augmented astronaut portraits (BGR), each exactly tile_w x tile_h."""
    from skimage import data as skdata  # public-domain test image shipped with scikit-image

    rgb = skdata.astronaut()
    face = cv2.cvtColor(rgb[20:360, 90:400], cv2.COLOR_RGB2BGR)  # (340, 310, 3) head+shoulders
    tiles = []
    for i in range(COLS * ROWS):
        img = cv2.flip(face, 1) if i % 2 else face
        gain, bias = 0.75 + 0.1 * (i % 4), -10.0 + 8.0 * i
        img = np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        if i in (2, 5):
            img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        scale = min(tile_w / img.shape[1], tile_h / img.shape[0]) * (0.8 + 0.04 * i)
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full((tile_h, tile_w, 3), 40 + 12 * i, np.uint8)
        oy, ox = (tile_h - img.shape[0]) // 2, (tile_w - img.shape[1]) // 2
        canvas[max(oy, 0) : max(oy, 0) + img.shape[0], max(ox, 0) : max(ox, 0) + img.shape[1]] = (
            img[: tile_h - max(oy, 0), : tile_w - max(ox, 0)]
        )
        tiles.append(canvas)
    return tiles


def _shared_tiles(data_dir: Path, tile_w: int, tile_h: int) -> list[np.ndarray]:
    """Six real webcam frames of different people from the shared data, resized to the tiles."""
    gallery = build_gallery(data_dir, cols=COLS, rows=ROWS, tile_w=tile_w, tile_h=tile_h)
    return [gallery.image[t.y : t.y + t.h, t.x : t.x + t.w].copy() for t in gallery.tiles]


def make_demo_clip(out_dir: Path, data_dir: Path | None) -> DemoClip:
    """Write ``demo.avi`` (MJPG) and ``seats.json`` under ``out_dir``; reuse them if present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    video, seats_path = out_dir / "demo.avi", out_dir / "seats.json"
    if video.is_file() and seats_path.is_file():
        meta = json.loads(seats_path.read_text())
        saved = {k: [(float(p[0]), float(p[1])) for p in v] for k, v in meta["seats"].items()}
        return DemoClip(video, saved, str(meta["origin"]))
    tile_w, tile_h = FRAME_W // COLS, FRAME_H // ROWS
    origin = "astronaut"
    tiles: list[np.ndarray] | None = None
    if data_dir is not None:
        try:
            tiles, origin = _shared_tiles(data_dir, tile_w, tile_h), "shared-frames"
        except (GalleryError, OSError, ValueError) as exc:
            logger.info("shared frames unusable for the demo clip (%s); using the astronaut", exc)
    if tiles is None:
        tiles = _astronaut_tiles(tile_w, tile_h)
    seats: dict[str, list[tuple[float, float]]] = {}
    for i in range(len(tiles)):
        x, y = (i % COLS) * tile_w, (i // COLS) * tile_h
        seats[f"S{i + 1:02d}"] = [
            (x, y),
            (x + tile_w, y),
            (x + tile_w, y + tile_h),
            (x, y + tile_h),
        ]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write the demo clip {video} (MJPG)")
    try:
        for n in range(FPS * SECONDS):
            frame = np.zeros((FRAME_H, FRAME_W, 3), np.uint8)
            for i, tile in enumerate(tiles):
                dx = round(6 * math.sin(2 * math.pi * (n / (FPS * 4) + i / 6)))
                shifted = np.roll(tile, dx, axis=1)  # (tile_h, tile_w, 3) drifting sideways
                x, y = (i % COLS) * tile_w, (i // COLS) * tile_h
                frame[y : y + tile_h, x : x + tile_w] = shifted
            writer.write(frame)
    finally:
        writer.release()
    seats_path.write_text(json.dumps({"origin": origin, "seats": seats}))
    logger.info("demo clip %s written from %s (%d seats)", video, origin, len(seats))
    return DemoClip(video, seats, origin)

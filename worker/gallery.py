"""Gallery-view "classroom" frames tiled from the shared real frames (for tests and the bench).

Only reads ``frames/`` of the shared data folder (``../shared/data`` or ``EMO_DATA_DIR``, resolved
by the caller); the images are never written into the repository.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from worker.errors import WorkerError

logger = logging.getLogger(__name__)


class GalleryError(WorkerError):
    """The shared frames needed for a gallery are missing or unreadable."""


@dataclass(frozen=True)
class Tile:
    """One real frame placed in the gallery."""

    index: int
    path: str
    subject: str
    label: str
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Gallery:
    """A tiled frame plus what is in each tile."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    tiles: tuple[Tile, ...]


def frame_rows(data_dir: Path, *, source: str = "webcam-class") -> list[dict[str, str]]:
    """Rows of ``frames/frames.csv`` from one source, sorted by path for determinism."""
    csv_path = data_dir / "frames" / "frames.csv"
    if not csv_path.is_file():
        raise GalleryError(
            f"shared frames index {csv_path} not found; set EMO_DATA_DIR to the shared data folder"
        )
    with csv_path.open(newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["source"] == source]
    return sorted(rows, key=lambda row: row["path"])


def pick_rows(
    rows: list[dict[str, str]], count: int, labels: tuple[str, ...] | None = None
) -> list[dict[str, str]]:
    """Spread ``count`` picks over subjects and labels (round-robin over subject/label groups),
    optionally only from ``labels``."""
    rows = [r for r in rows if labels is None or r["original_label"] in labels]
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["subject"], row["original_label"]), []).append(row)
    keys = sorted(groups, key=lambda k: (k[1], k[0]))  # label-major: neighbours differ in person
    picked: list[dict[str, str]] = []
    depth = 0
    while len(picked) < count:
        added = False
        for key in keys:
            if depth < len(groups[key]) and len(picked) < count:
                picked.append(groups[key][depth])
                added = True
        if not added:
            raise GalleryError(f"only {len(picked)} frames available, {count} requested")
        depth += 1
    return picked


def build_gallery(
    data_dir: Path,
    *,
    cols: int,
    rows: int,
    tile_w: int,
    tile_h: int,
    picks: list[dict[str, str]] | None = None,
) -> Gallery:
    """Tile ``cols * rows`` real frames (each resized to tile_w x tile_h) into one BGR frame."""
    chosen = picks if picks is not None else pick_rows(frame_rows(data_dir), cols * rows)
    canvas = np.zeros((rows * tile_h, cols * tile_w, 3), dtype=np.uint8)
    tiles: list[Tile] = []
    for i, row in enumerate(chosen[: cols * rows]):
        path = data_dir / "frames" / row["path"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise GalleryError(f"shared frame {path} is missing or not an image")
        x, y = (i % cols) * tile_w, (i // cols) * tile_h
        canvas[y : y + tile_h, x : x + tile_w] = cv2.resize(
            image, (tile_w, tile_h), interpolation=cv2.INTER_AREA
        )
        tiles.append(
            Tile(i, row["path"], row["subject"], row["original_label"], x, y, tile_w, tile_h)
        )
    return Gallery(canvas, tuple(tiles))


def bench_gallery(data_dir: Path, faces: int = 30) -> Gallery:
    """The benchmark frame: 1920x1080, 6x5 tiles of 320x216 real webcam frames (30 faces)."""
    if faces != 30:
        cols = int(np.ceil(np.sqrt(faces * 16 / 9)))
        rows = int(np.ceil(faces / cols))
        return build_gallery(
            data_dir, cols=cols, rows=rows, tile_w=1920 // cols, tile_h=1080 // rows
        )
    return build_gallery(data_dir, cols=6, rows=5, tile_w=320, tile_h=216)

"""Cut labelled faces out of photos and videos into a manifest folder (the shared format).

A labels file (CSV) names, per row, one face in one medium:

- ``media``: the photo or video, relative to the media folder;
- ``frames``: empty for a photo; ``FIRST-LAST/STEP`` for a video (0-based frame numbers,
  both ends included): every STEP-th frame of that stretch gives one crop;
- ``x``, ``y``: a point inside the face, in the medium's own pixels; empty: the largest face;
- ``label``: one of the six learning emotions; ``subject``: who it is (any id, kept
  pseudonymous); ``source``: how ``per_source`` groups the rows (e.g. the package or camera).

Faces are found as the shared crops were (data README): MTCNN on a copy whose long side is
640 px, minimum face 40 px there, the square of ``crop_scale`` x the box's longer side around
its centre (black outside the frame, as the worker cuts it), resized to 160 px, JPEG q 92.
A row whose face is not found is reported in ``build.json`` and left out; it is never
guessed.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from contract.labels import LABELS
from models.data import FRAMING, MANIFEST, SHARED_CROP_SCALE
from models.errors import DataError, ManifestError
from models.files import write_text_atomic

logger = logging.getLogger(__name__)

LABEL_COLUMNS = ("media", "frames", "x", "y", "label", "subject", "source")
DETECT_SIDE = 640  # the shared crops' detection copy
MIN_FACE = 40
OUT_SIDE = 160
SPLIT = "external"
_FRAMES = re.compile(r"^(\d+)-(\d+)/(\d+)$")

Box = tuple[float, float, float, float, float]  # x1, y1, x2, y2, probability


@dataclass(frozen=True)
class LabelRow:
    """One labelled face (a photo) or one labelled stretch of a video."""

    line: int
    media: str
    frames: tuple[int, int, int] | None  # first, last, step
    point: tuple[float, float] | None
    label: str
    subject: str
    source: str


def _frames(text: str, where: str) -> tuple[int, int, int] | None:
    if not text:
        return None
    m = _FRAMES.match(text)
    if m is None:
        raise ManifestError(f"{where}: frames {text!r}, expected FIRST-LAST/STEP (e.g. 0-120/10)")
    first, last, step = (int(g) for g in m.groups())
    if last < first or step < 1:
        raise ManifestError(f"{where}: frames {text!r} need FIRST <= LAST and STEP >= 1")
    return first, last, step


def load_labels(path: Path) -> list[LabelRow]:
    """Parse and check a labels file; every error names the file and line."""
    if not path.is_file():
        raise ManifestError(
            f"labels file {path} not found (expected a CSV, columns {LABEL_COLUMNS})"
        )
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in LABEL_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(
                f"labels file {path} lacks columns {missing}; has {reader.fieldnames}"
            )
        rows = []
        for line, rec in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in rec:
                raise ManifestError(
                    f"{where}: more fields than the header's (quote text with commas)"
                )
            label = rec["label"].strip()
            if label not in LABELS:
                raise ManifestError(f"{where}: unknown label {label!r}; expected one of {LABELS}")
            x, y = rec["x"].strip(), rec["y"].strip()
            try:
                point = (float(x), float(y)) if x or y else None
            except ValueError as exc:
                raise ManifestError(f"{where}: x/y {x!r},{y!r} are not numbers") from exc
            media = rec["media"].strip()
            if not media or Path(media).is_absolute() or ".." in Path(media).parts:
                raise ManifestError(
                    f"{where}: media {media!r}, expected a path inside the media folder"
                )
            rows.append(
                LabelRow(
                    line,
                    media,
                    _frames(rec["frames"].strip(), where),
                    point,
                    label,
                    rec["subject"].strip() or "unknown",
                    rec["source"].strip() or "external",
                )
            )
    if not rows:
        raise ManifestError(f"labels file {path} has no rows")
    return rows


def read_media(path: Path, frames: tuple[int, int, int] | None) -> list[tuple[int, np.ndarray]]:
    """(frame number, BGR image) pairs: the photo (number 0) or the video's chosen frames."""
    if not path.is_file():
        raise DataError(f"media file {path} not found (run `python -m models.external fetch`?)")
    if frames is None:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"photo {path} cannot be decoded (expected a JPEG/PNG image)")
        return [(0, image)]
    first, last, step = frames
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"video {path} cannot be opened (expected a video file OpenCV reads)")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total and last >= total:
            raise DataError(f"video {path} has {total} frames; labels ask for frame {last}")
        out = []
        cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        for number in range(first, last + 1):
            ok, image = cap.read()
            if not ok:
                raise DataError(f"video {path} ends or breaks at frame {number}")
            if (number - first) % step == 0:
                out.append((number, image))
        return out
    finally:
        cap.release()


class FaceFinder:
    """MTCNN as the shared crops were made: long side 640 px, minimum face 40 px."""

    def __init__(self) -> None:
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(keep_all=True, min_face_size=MIN_FACE)

    def find(self, bgr: np.ndarray) -> list[Box]:
        """Boxes in ``bgr``'s own pixels, most probable first."""
        import torch

        scale = min(1.0, DETECT_SIDE / max(bgr.shape[:2]))
        small = (
            bgr
            if scale == 1.0
            else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        with torch.inference_mode():
            boxes, probs = self.mtcnn.detect(np.ascontiguousarray(small[:, :, ::-1]))
        if boxes is None:
            return []
        found = [
            (*(float(v) / scale for v in np.asarray(b, dtype=np.float64)), float(p))
            for b, p in zip(boxes, probs, strict=True)
        ]
        return sorted(found, key=lambda b: -b[4])


def pick(boxes: list[Box], point: tuple[float, float] | None) -> Box | None:
    """The box holding ``point`` (the nearest centre if several), or the largest box."""
    if point is None:
        return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), default=None)
    px, py = point
    holding = [b for b in boxes if b[0] <= px <= b[2] and b[1] <= py <= b[3]]
    return min(
        holding,
        key=lambda b: ((b[0] + b[2]) / 2 - px) ** 2 + ((b[1] + b[3]) / 2 - py) ** 2,
        default=None,
    )


def cut_face(bgr: np.ndarray, box: Box, crop_scale: float, side_out: int = OUT_SIDE) -> np.ndarray:
    """The square of ``crop_scale`` x the box's longer side, black outside the frame."""
    side = max(box[2] - box[0], box[3] - box[1]) * crop_scale
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    x1, y1, n = round(cx - side / 2.0), round(cy - side / 2.0), max(1, round(side))
    h, w = bgr.shape[:2]
    canvas = np.zeros((n, n, 3), dtype=bgr.dtype)
    sx1, sy1, sx2, sy2 = max(0, x1), max(0, y1), min(w, x1 + n), min(h, y1 + n)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = bgr[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if n > side_out else cv2.INTER_LINEAR
    return cv2.resize(canvas, (side_out, side_out), interpolation=interp)


def build(
    labels: Path, media_root: Path, out: Path, crop_scale: float = SHARED_CROP_SCALE
) -> dict[str, Any]:
    """Write ``out`` (images/, manifest.csv, framing.json, build.json); return build.json."""
    if not 0.5 <= crop_scale <= 3.0:
        raise DataError(f"--crop-scale {crop_scale}: expected a factor in [0.5, 3.0]")
    if (out / MANIFEST).exists():
        raise DataError(f"{out} already holds a {MANIFEST}; pick a new folder")
    rows = load_labels(labels)
    finder = FaceFinder()
    (out / "images").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, str]] = []
    missed: list[str] = []
    for row in rows:
        for number, image in read_media(media_root / row.media, row.frames):
            box = pick(finder.find(image), row.point)
            where = f"{labels}:{row.line} {row.media} frame {number}"
            if box is None:
                missed.append(where)
                continue
            name = f"images/{len(records):05d}.jpg"
            crop = cut_face(image, box, crop_scale)
            if not cv2.imwrite(str(out / name), crop, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise DataError(f"cannot write {out / name}")
            records.append(
                {
                    "path": name,
                    "label": row.label,
                    "source": row.source,
                    "subject": row.subject,
                    "original_label": f"{row.media}#{number}",
                    "split": SPLIT,
                    "det_prob": f"{box[4]:.4f}",
                    "box": " ".join(f"{v:.0f}" for v in box[:4]),
                }
            )
    if not records:
        raise DataError(f"no labelled face of {labels} was found in {media_root}")
    with (out / MANIFEST).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    write_text_atomic(
        out / FRAMING, json.dumps({"crop_scale": crop_scale, "source": str(labels)}) + "\n"
    )
    counts = {lab: sum(r["label"] == lab for r in records) for lab in LABELS}
    doc = {"labels": str(labels), "n": len(records), "per_label": counts, "not_found": missed}
    write_text_atomic(out / "build.json", json.dumps(doc, indent=2) + "\n")
    logger.info("%d crops into %s; %d labelled faces not found", len(records), out, len(missed))
    return doc

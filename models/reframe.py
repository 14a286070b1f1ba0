"""One framing for every source: re-crop a manifest folder so a face fills its crop the same way.

``python -m models.reframe --data DIR --out NEW_DIR [--eye-distance 0.40]``

The shared crops come from two rules (see the data README). Webcam, DAiSEE and in-car
crops were cut by MTCNN at 1.3x the detected box, exactly as the worker cuts a face out of a
camera frame. FER2013, CK+ and AffectNet crops were already cropped and were only resized:
their faces are much larger in the crop (eye distance 0.39-0.40 of the side for the joy
sources, 0.27 for the webcam). Joy comes only from those sources, so face size alone
predicts joy, and a model learns it: zooming webcam validation crops 1.2x made the model
shipped in the sixth session call 87 % of them joy (model card, "Seventh session"). A real
camera is framed by the worker's rule for every class, so such a model fails there.

This job gives every crop one framing, at a tighter zoom than the worker's old 1.3x box so
that no source needs much padding:

- rows of **box sources** (cut by the worker's rule; every source not in
  ``--landmark-sources``) get the same central window: ``zoom`` of the side, where
  ``zoom = median eye distance of their training rows / --eye-distance``. A worker
  produces the same window by cropping ``1.3 * zoom`` times the detected box, which
  ``framing.json`` records as ``crop_scale`` for the exported model's sidecar;
- rows of **landmark sources** (already-cropped data) are found again with MTCNN on the
  crop and cut so that their eyes land where the box sources' eyes land on average, at
  ``--eye-distance`` of the side. A row where MTCNN finds no face gets its source's median
  window (counted in ``framing.json``).

MTCNN's landmarks shift with the face's size in its input, so this framing is matched to
within the detector's own noise, not exactly: measured again on the output, the median eye
distance is 0.41 (FER2013), 0.42 (CK+), 0.45 (AffectNet) and 0.36-0.48 across the box
sources (a second pass that re-measured at the common size overshot to 0.46 for FER2013
and was dropped). Before, it was 0.40 / 0.39 / 0.30 against 0.23-0.28.

No rotation: the "thinking" class is a tilted head. Pixels outside a crop repeat its border.
All splits are cut by the same rule, fitted on training rows only; labels are not used.
The output is a manifest folder in the shared format: ``models.train --data-dir NEW_DIR`` trains
on it and ``models.evaluate`` refuses a model whose sidecar framing differs from the folder's.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.cli import entry_point
from models.data import FRAMING, load_manifest, write_manifest_as
from models.errors import DataError
from models.files import write_text_atomic

logger = logging.getLogger(__name__)

LANDMARK_SOURCES = ("fer2013", "ckplus", "affectnet-relabel")  # "only resized" in the README
OUT_SIDE = 160  # the shared crops' side
WORKER_SCALE = 1.3  # the shared box sources were cut at 1.3x the detected box


@dataclass(frozen=True)
class Eyes:
    """Eye centres' midpoint and distance, in fractions of the crop side."""

    x: float
    y: float
    distance: float


def find_eyes(images: list[np.ndarray], batch: int = 64) -> list[Eyes | None]:
    """MTCNN (the dataset's detector) on RGB crops: the largest face's eyes, or None."""
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=False, select_largest=True, min_face_size=20)
    found: list[Eyes | None] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        with torch.inference_mode():
            boxes, _probs, points = mtcnn.detect(chunk, landmarks=True)
        for im, box, pts in zip(chunk, boxes, points, strict=True):
            if box is None or pts is None:
                found.append(None)
                continue
            lm = np.asarray(pts[0], dtype=np.float64)  # (5, 2): eyes, nose, mouth corners
            side = float(im.shape[0])
            mid = (lm[0] + lm[1]) / 2.0
            dist = float(np.hypot(*(lm[1] - lm[0])))
            found.append(Eyes(mid[0] / side, mid[1] / side, dist / side) if dist > 0 else None)
    return found


@dataclass(frozen=True)
class Framing:
    """The common framing, fitted on the box sources' training rows."""

    zoom: float  # box-source window side / crop side
    eye_x: float  # where the eyes' midpoint lands in the output, fraction of its side
    eye_y: float
    eye_distance: float  # target eye distance, fraction of the output side

    @property
    def crop_scale(self) -> float:
        """Square crop side / detected box side that gives the same window in the worker."""
        return WORKER_SCALE * self.zoom


def fit_framing(reference: list[Eyes], eye_distance: float) -> Framing:
    """Medians of the box sources' eyes -> the window every crop gets."""
    if not reference:
        raise DataError("no training row of a box source has a detectable face to fit on")
    if not 0.1 <= eye_distance <= 0.6:
        raise DataError(f"--eye-distance {eye_distance}: expected a fraction in [0.1, 0.6]")
    med = np.median([[e.x, e.y, e.distance] for e in reference], axis=0)
    zoom = float(med[2] / eye_distance)
    if zoom > 1.0:
        raise DataError(
            f"--eye-distance {eye_distance} would widen the box sources' crops "
            f"(their median eye distance is {med[2]:.3f}); pick one >= {med[2]:.3f}"
        )
    return Framing(zoom, (med[0] - 0.5) / zoom + 0.5, (med[1] - 0.5) / zoom + 0.5, eye_distance)


def window(framing: Framing, eyes: Eyes | None, landmark_row: bool) -> tuple[float, float, float]:
    """(x0, y0, side) of the window in crop-side fractions."""
    if not landmark_row:
        side = framing.zoom
        return (1.0 - side) / 2.0, (1.0 - side) / 2.0, side
    if eyes is None:
        raise DataError("a landmark-source row needs eyes (or its source's median)")
    side = eyes.distance / framing.eye_distance
    return eyes.x - framing.eye_x * side, eyes.y - framing.eye_y * side, side


def cut(image: np.ndarray, x0: float, y0: float, side: float, out: int = OUT_SIDE) -> np.ndarray:
    """The window (fractions of ``image``'s side) resampled to ``out`` px, border repeated."""
    n = image.shape[0]
    scale = out / (side * n)
    matrix = np.array([[scale, 0.0, -x0 * n * scale], [0.0, scale, -y0 * n * scale]])
    if scale < 1.0:  # warpAffine has no area filter: shrink (area) first, then only shift
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        matrix[:, 2] *= small.shape[0] / (n * scale)  # the shrunk side is rounded
        matrix[:, :2] = np.eye(2)
        image = small
    return cv2.warpAffine(
        image, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def source_medians(eyes: list[Eyes | None], sources: list[str]) -> dict[str, Eyes]:
    """Per source, the median eyes over rows where MTCNN found a face (failed-row fallback)."""
    by: dict[str, list[Eyes]] = {}
    for e, s in zip(eyes, sources, strict=True):
        if e is not None:
            by.setdefault(s, []).append(e)
    return {
        s: Eyes(*np.median([[e.x, e.y, e.distance] for e in es], axis=0).tolist())
        for s, es in by.items()
    }


def reframe(
    data_dir: Path,
    out: Path,
    eye_distance: float = 0.40,
    landmark_sources: tuple[str, ...] = LANDMARK_SOURCES,
    quality: int = 95,
) -> dict[str, Any]:
    """Write ``out`` (manifest + images + framing.json); return framing.json's contents."""
    if out.resolve() == data_dir.resolve():
        raise DataError(f"--out {out} is the input folder; pick a new folder")
    if (data_dir / FRAMING).is_file():
        raise DataError(f"{data_dir} is already reframed ({data_dir / FRAMING})")
    rows = load_manifest(data_dir)
    images = []
    for row in rows:
        bgr = cv2.imread(str(row.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"image {row.path} cannot be decoded (expected a JPEG/PNG image)")
        if bgr.shape[0] != bgr.shape[1]:
            raise DataError(f"image {row.path} is {bgr.shape[1]}x{bgr.shape[0]}; expected square")
        images.append(cv2.resize(bgr, (OUT_SIDE, OUT_SIDE), interpolation=cv2.INTER_AREA))
    logger.info("finding eyes in %d crops with MTCNN", len(rows))
    eyes = find_eyes([im[:, :, ::-1] for im in images])
    sources = [r.source for r in rows]
    is_landmark = [s in landmark_sources for s in sources]
    reference = [
        e
        for e, r, lm in zip(eyes, rows, is_landmark, strict=True)
        if e is not None and not lm and r.split == "train"
    ]
    framing = fit_framing(reference, eye_distance)
    medians = source_medians(eyes, sources)
    missed: dict[str, int] = {}
    windows = []
    for i, row in enumerate(rows):
        e = eyes[i]
        if is_landmark[i] and e is None:
            missed[row.source] = missed.get(row.source, 0) + 1
            e = medians.get(row.source)
            if e is None:
                raise DataError(f"MTCNN finds no face in any crop of source {row.source!r}")
        windows.append(window(framing, e, is_landmark[i]))
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = [f"images/{i:05d}.jpg" for i in range(len(rows))]
    for name, im, win in zip(names, images, windows, strict=True):
        if not cv2.imwrite(str(out / name), cut(im, *win), [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise DataError(f"cannot write {out / name}")
    write_manifest_as(data_dir, out, names)
    doc = {
        "crop_scale": round(framing.crop_scale, 4),
        "zoom": framing.zoom,
        "eye_distance": framing.eye_distance,
        "eye_x": framing.eye_x,
        "eye_y": framing.eye_y,
        "landmark_sources": sorted(set(landmark_sources) & set(sources)),
        "landmark_rows_without_face": missed,
        "source": str(data_dir),
        "n": len(rows),
    }
    write_text_atomic(out / FRAMING, json.dumps(doc, indent=2) + "\n")
    logger.info("reframed %d crops into %s: crop_scale %.4f", len(rows), out, framing.crop_scale)
    return doc


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.reframe", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="manifest folder (shared format)")
    p.add_argument("--out", type=Path, required=True, help="new manifest folder")
    p.add_argument("--eye-distance", type=float, default=0.40, help="fraction of the side")
    p.add_argument(
        "--landmark-sources",
        default=",".join(LANDMARK_SOURCES),
        help="comma-separated sources that were not cut by the 1.3x box rule",
    )
    args = p.parse_args(argv)
    reframe(
        args.data,
        args.out,
        args.eye_distance,
        tuple(s for s in args.landmark_sources.split(",") if s),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Camera-condition robustness of an exported model: the evaluation under controlled changes.

``python -m models.robustness --onnx PATH --data DIR [--split NAME] --out REPORT.json``

A classroom camera is a new recording: other exposure, contrast, sharpness, resolution,
noise and compression than any training source. A model that learned the source (the joy
crops are brighter and blurrier than the webcam ones, see the data README) changes its
answers when only the camera changes. Each condition here is applied to the crops at their
stored resolution (``--native``, as a camera would change them), then every crop is resized
to the model's input exactly as ``models.evaluate`` does. Per condition the report gives
macro-F1, accuracy, per-source macro-F1, the share of crops given each label and
``agreement``: the fraction of crops whose predicted class is the one predicted on the
clean crops (1.0 = blind to that change). ``mean_macro_f1_camera`` averages the nine camera
changes; ``mean_macro_f1_framing`` the two zooms, which change only how large the face is
in its crop (a detector that boxes faces tighter or looser than the one the crops were cut
with): a model that reads face size as a class fails them (``models.reframe``).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from contract import LABELS
from models.cli import entry_point
from models.data import check_framing, load_images, load_manifest
from models.errors import ModelsError
from models.evaluate import add_evaluation_args, open_model, predict
from models.files import write_text_atomic
from models.metrics import report

logger = logging.getLogger(__name__)

Image = np.ndarray  # RGB uint8 (H, W, 3)


def _u8(x: np.ndarray) -> Image:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def exposure(factor: float) -> Callable[[Image], Image]:
    """All pixel values times ``factor`` (under/over-exposure)."""
    return lambda im: _u8(im.astype(np.float32) * factor)


def contrast(factor: float) -> Callable[[Image], Image]:
    """Deviations from the image's mean grey times ``factor``."""
    return lambda im: _u8((im - im.mean()) * factor + im.mean())


def gamma(g: float) -> Callable[[Image], Image]:
    """Pixel values (in [0, 1]) to the power ``g``."""
    return lambda im: _u8(255.0 * (im / 255.0) ** g)


def blur(sigma: float) -> Callable[[Image], Image]:
    """Gaussian blur (a soft or out-of-focus lens)."""
    return lambda im: cv2.GaussianBlur(im, (0, 0), sigma)


def low_resolution(side: int) -> Callable[[Image], Image]:
    """Down to ``side`` px (a small face far from the camera) and back up."""

    def apply(im: Image) -> Image:
        small = cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, im.shape[1::-1], interpolation=cv2.INTER_LINEAR)

    return apply


def noise(sigma: float, seed: int = 0) -> Callable[[Image], Image]:
    """Additive Gaussian sensor noise (same on the three channels), fixed seed."""
    rng = np.random.default_rng(seed)
    return lambda im: _u8(im + rng.normal(0.0, sigma, im.shape[:2])[..., None])


def jpeg(quality: int) -> Callable[[Image], Image]:
    """JPEG re-compression at ``quality`` (a low-bitrate stream)."""

    def apply(im: Image) -> Image:
        ok, buf = cv2.imencode(".jpg", im[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ModelsError(f"JPEG encoding at quality {quality} failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:
            raise ModelsError(f"JPEG decoding at quality {quality} failed")
        return np.ascontiguousarray(decoded[:, :, ::-1])

    return apply


def zoom(factor: float) -> Callable[[Image], Image]:
    """The face ``factor`` times larger in the crop (a box that is tighter or looser than the
    one the crops were cut from: another detector scale, another camera distance model).
    Above 1 the central window is cut and enlarged; below 1 the border is repeated."""

    def apply(im: Image) -> Image:
        n = im.shape[0]
        if factor >= 1.0:
            w = round(n / factor)
            o = (n - w) // 2
            return cv2.resize(im[o : o + w, o : o + w], (n, n), interpolation=cv2.INTER_LINEAR)
        pad = round((n / factor - n) / 2)
        big = cv2.copyMakeBorder(im, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)

    return apply


CONDITIONS: dict[str, Callable[[Image], Image]] = {
    "clean": lambda im: im,
    "exposure x0.6": exposure(0.6),
    "exposure x1.4": exposure(1.4),
    "contrast x0.5": contrast(0.5),
    "gamma 0.6": gamma(0.6),
    "gamma 1.6": gamma(1.6),
    "blur sigma 2": blur(2.0),
    "resolution 24 px": low_resolution(24),
    "noise sigma 12": noise(12.0),
    "jpeg q 15": jpeg(15),
    "zoom x1.2": zoom(1.2),
    "zoom x0.85": zoom(0.85),
}
CAMERA = tuple(list(CONDITIONS)[1:10])  # the nine of the sixth session (exposure .. JPEG)
FRAMING_CONDITIONS = ("zoom x1.2", "zoom x0.85")


def to_input(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3), resized as ``models.data.read_rgb`` does."""
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def robustness(
    onnx_path: Path, data_dir: Path, split: str | None, out: Path, native: int = 160
) -> dict[str, Any]:
    """Evaluate under every condition; write and return the report."""
    sess, sidecar = open_model(onnx_path)
    check_framing(data_dir, sidecar.crop_scale, f"model {onnx_path}")
    rows = load_manifest(data_dir, split)
    y = np.array([r.label for r in rows])
    sources = [r.source for r in rows]
    crops = load_images(rows, native)
    clean: np.ndarray | None = None
    results: dict[str, Any] = {}
    for name, change in CONDITIONS.items():
        changed = np.stack([change(im) for im in crops])
        pred = predict(sess, sidecar, to_input(changed, sidecar.input_size)).argmax(axis=1)
        clean = pred if clean is None else clean
        rep = report(y, pred, sources)
        results[name] = {
            "macro_f1": rep["macro_f1"],
            "accuracy": rep["accuracy"],
            "agreement": float((pred == clean).mean()),
            "per_source_macro_f1": {s: v["macro_f1"] for s, v in rep["per_source"].items()},
            # share of crops given each label: a change that turns faces into one class shows here
            "predicted_share": {label: float((pred == i).mean()) for i, label in enumerate(LABELS)},
        }
        logger.info(
            "%-18s macro-F1 %.4f agreement %.3f", name, rep["macro_f1"], results[name]["agreement"]
        )
    doc: dict[str, Any] = {
        "onnx": str(onnx_path),
        "data": str(data_dir),
        "split": split,
        "n": len(rows),
    }
    doc |= {
        "native_size": native,
        "mean_macro_f1_camera": float(np.mean([results[c]["macro_f1"] for c in CAMERA])),
        "mean_macro_f1_framing": float(
            np.mean([results[c]["macro_f1"] for c in FRAMING_CONDITIONS])
        ),
        "conditions": results,
    }
    write_text_atomic(out, json.dumps(doc, indent=2) + "\n")
    return doc


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.robustness", description=__doc__)
    add_evaluation_args(p)
    p.add_argument("--native", type=int, default=160, help="side the changes are applied at")
    args = p.parse_args(argv)
    robustness(args.onnx, args.data, args.split, args.out, args.native)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

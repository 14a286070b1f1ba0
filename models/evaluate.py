"""Evaluation job (ONNX model on a manifest folder).

``python -m models.evaluate --onnx PATH --data DIR [--split NAME] --out REPORT.json``

Runs an exported model (through its sidecar, as the worker would) on the crops of
``DIR/manifest.csv`` (only ``--split`` rows if given) and writes REPORT.json with keys
accuracy, mean_class_accuracy, macro_f1 (over labels present), per_class, per_source,
confusion_matrix (rows true, columns predicted, contract label order) and n, plus a
confusion-matrix PNG beside it (REPORT.png).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from contract.labels import LABELS
from contract.sidecar import ModelSidecar, SidecarError, sidecar_path_for
from models.cli import entry_point
from models.data import check_framing, load_images, load_manifest, normalise
from models.errors import SidecarMismatchError
from models.files import write_text_atomic
from models.metrics import report

logger = logging.getLogger(__name__)


def open_model(onnx_path: Path) -> tuple[ort.InferenceSession, ModelSidecar]:
    """ONNX Runtime session + its validated sidecar; mismatches name both files."""
    side_path = sidecar_path_for(onnx_path)
    if not onnx_path.is_file():
        raise SidecarMismatchError(f"ONNX model {onnx_path} not found")
    try:
        sidecar = ModelSidecar.load(side_path, verify_onnx=True)
    except SidecarError as exc:
        raise SidecarMismatchError(str(exc)) from exc
    if sidecar.onnx_path(side_path).resolve() != onnx_path.resolve():
        raise SidecarMismatchError(
            f"sidecar {side_path} describes {sidecar.onnx_file}, not {onnx_path.name}"
        )
    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise SidecarMismatchError(f"ONNX model {onnx_path} cannot be loaded: {exc}") from exc
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    shape = list(inp.shape)
    if inp.name != sidecar.input_name or out.name != sidecar.output_name:
        raise SidecarMismatchError(
            f"ONNX model {onnx_path} I/O ({inp.name}, {out.name}) != sidecar {side_path} "
            f"({sidecar.input_name}, {sidecar.output_name})"
        )
    if shape[1:] != [3, sidecar.input_size, sidecar.input_size]:
        raise SidecarMismatchError(
            f"ONNX model {onnx_path} input {shape} != sidecar {side_path} input size "
            f"{sidecar.input_size}"
        )
    return sess, sidecar


def predict(
    sess: ort.InferenceSession, sidecar: ModelSidecar, rgb: np.ndarray, batch: int = 64
) -> np.ndarray:
    """Probabilities (N, 6) for RGB uint8 crops (N, S, S, 3) preprocessed from the sidecar."""
    probs = []
    for start in range(0, len(rgb), batch):
        x = normalise(
            rgb[start : start + batch], sidecar.mean, sidecar.std, sidecar.colour == "grey"
        )
        probs.append(sess.run([sidecar.output_name], {sidecar.input_name: x})[0])
    return np.concatenate(probs)


def save_confusion_png(cm: list[list[int]], path: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = np.asarray(cm, dtype=np.float64)
    norm = arr / np.maximum(arr.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(arr[i, j])), ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(onnx_path: Path, data_dir: Path, split: str | None, out: Path) -> dict[str, Any]:
    """Evaluate and write REPORT.json + REPORT.png; returns the report."""
    sess, sidecar = open_model(onnx_path)
    check_framing(data_dir, sidecar.crop_scale, f"model {onnx_path}")
    rows = load_manifest(data_dir, split)
    rgb = load_images(rows, sidecar.input_size)
    pred = predict(sess, sidecar, rgb).argmax(axis=1)
    y = np.array([r.label for r in rows])
    rep = report(y, pred, [r.source for r in rows])
    write_text_atomic(out, json.dumps(rep, indent=2) + "\n")
    title = f"{onnx_path.name} on {data_dir.name}" + (f" [{split}]" if split else "")
    save_confusion_png(rep["confusion_matrix"], out.with_suffix(".png"), title)
    logger.info(
        "n=%d accuracy %.4f macro-F1 %.4f -> %s", rep["n"], rep["accuracy"], rep["macro_f1"], out
    )
    return rep


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """The interface other tools rely on: ``--onnx PATH --data DIR [--split NAME] --out REPORT``."""
    p.add_argument("--onnx", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--split", default=None)
    p.add_argument("--out", type=Path, required=True)


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__)
    add_evaluation_args(p)
    args = p.parse_args(argv)
    evaluate(args.onnx, args.data, args.split, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Calibration job: per-class logit offsets fitted on the validation split, folded into the head.

``python -m models.calibrate --checkpoint RUN/best.pt [--out RUN/calibrated.pt] [--data DIR]``

A model trained with class-weighted loss still under- or over-predicts some classes on
held-out people. This job searches one additive offset per class (coordinate ascent over a
grid, a few sweeps, only strict gains kept) that maximises macro-F1 on ``--split`` (default
``val``: never the test split), adds the offsets to the classifier's bias (no inference
cost, nothing changes in the exported graph's shape) and writes a new checkpoint that records
them under ``calibration``, with the split's macro-F1 before and after.

``--offsets-from CALIBRATED.pt`` applies the offsets another calibrated checkpoint recorded
instead of fitting new ones: for a refit that trained on the validation person
(``models.train --regroup``), whose own validation score would no longer mean anything.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from contract.labels import LABELS
from models.checkpoint import (
    ckpt_crop_scale,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from models.cli import entry_point
from models.data import (
    check_framing,
    load_images,
    load_manifest,
    normalise,
)
from models.errors import CheckpointError
from models.export import input_spec
from models.metrics import macro_f1
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

GRID = np.round(np.linspace(-2.0, 2.0, 41), 2)  # offsets tried per class, in logit units


def classifier(model: nn.Module) -> nn.Linear:
    """The final linear layer of a fusion model (``head``) or a timm baseline."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        net = getattr(model, "net", None)
        head = net.get_classifier() if net is not None else None
    if not isinstance(head, nn.Linear) or head.bias is None or head.out_features != len(LABELS):
        raise CheckpointError(f"cannot find a {len(LABELS)}-way linear classifier with a bias")
    return head


def split_inputs(model: nn.Module, data_dir: Path, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """(model inputs (N, 3, S, S), labels (N,)) of ``split`` of ``data_dir``, as ``model`` wants."""
    size, mean, std = input_spec(model)
    rows = load_manifest(data_dir, split)
    x = torch.from_numpy(normalise(load_images(rows, size), mean, std, grey=True))
    return x, np.array([r.label for r in rows])


def batch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Logits (N, 6) of ``model`` on inputs ``x``, in batches of 128."""
    with torch.no_grad():
        return torch.cat([model(b) for b in x.split(128)]).numpy()


def logits_of(model: nn.Module, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, 6), labels (N,)) of the model on ``split`` of ``data_dir``."""
    x, labels = split_inputs(model, data_dir, split)
    return batch_logits(model, x), labels


def fit_offsets(logits: np.ndarray, labels: np.ndarray, sweeps: int = 3) -> np.ndarray:
    """Per-class offsets maximising macro-F1 of ``argmax(logits + offsets)``."""
    offsets = np.zeros(logits.shape[1])
    best = macro_f1(labels, logits.argmax(1))
    for _ in range(sweeps):
        improved = False
        for k in range(logits.shape[1]):
            for value in GRID:
                trial = offsets.copy()
                trial[k] = value
                score = macro_f1(labels, (logits + trial).argmax(1))
                if score > best + 1e-9:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return offsets


def transferred_offsets(path: Path) -> np.ndarray:
    """The offsets a calibrated checkpoint recorded (for a refit that has no validation
    person left to fit its own on)."""
    payload = load_checkpoint(path)
    if "calibration" not in payload:
        raise CheckpointError(f"checkpoint {path} is not calibrated: it has no offsets to give")
    recorded = payload["calibration"]["logit_offsets"]
    return np.array([recorded[label] for label in LABELS], dtype=np.float64)


def calibrate(
    ckpt_path: Path,
    out: Path,
    data_dir: Path,
    split: str = "val",
    offsets_from: Path | None = None,
) -> dict[str, Any]:
    """Fit offsets on ``split`` (or take ``offsets_from``'s), fold them into the head bias and
    write ``out``."""
    if split == "test":
        raise CheckpointError("calibrating on the test split would tune on it: use val")
    model, payload = model_from_checkpoint(ckpt_path)
    if "calibration" in payload:
        raise CheckpointError(f"checkpoint {ckpt_path} is already calibrated")
    check_framing(data_dir, ckpt_crop_scale(payload), f"checkpoint {ckpt_path}")
    logits, labels = logits_of(model, data_dir, split)
    offsets = (
        fit_offsets(logits, labels) if offsets_from is None else transferred_offsets(offsets_from)
    )
    head = classifier(model)
    with torch.no_grad():
        head.bias.add_(torch.from_numpy(offsets).to(head.bias))
    record = {
        "split": split,
        "data_dir": str(data_dir),
        "logit_offsets": dict(zip(LABELS, offsets.round(4).tolist(), strict=True)),
        "macro_f1_before": macro_f1(labels, logits.argmax(1)),
        "macro_f1_after": macro_f1(labels, (logits + offsets).argmax(1)),
        "source_checkpoint": str(ckpt_path),
    }
    if offsets_from is not None:
        record["offsets_from"] = str(offsets_from)
    payload.pop("optimizer", None)  # a deployable checkpoint, not a resumable one
    payload |= {"model": model.state_dict(), "calibration": record}
    save_checkpoint(out, payload)
    return record


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m models.calibrate", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, help="default: calibrated.pt beside the checkpoint")
    p.add_argument("--data", type=Path, default=ModelsSettings().learning_emotions_dir)
    p.add_argument("--split", default="val")
    p.add_argument(
        "--offsets-from",
        type=Path,
        help="a calibrated checkpoint whose offsets to apply instead of fitting new ones",
    )
    args = p.parse_args(argv)
    out = args.out or args.checkpoint.with_name("calibrated.pt")
    record = calibrate(args.checkpoint, out, args.data, args.split, args.offsets_from)
    logger.info("wrote %s: %s", out, json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

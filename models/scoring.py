"""Scoring a model with PyTorch, no export: validation while training and ``--report-split``.

Also a command for scoring a finished run's checkpoint on any manifest folder (the shared test
split, the external set, a school's own crops) without exporting it first:

    python -m models.scoring --checkpoint runs/X/best.pt --data DIR [--split NAME] [--out R.json]

The crop size is the run's own (its ``train_config``); the report has the keys of
``models.evaluate`` and goes to ``best.<split>.json`` beside the checkpoint unless ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.batches import Batches
from models.checkpoint import model_from_checkpoint
from models.cli import entry_point
from models.data import ManifestRow, load_grey, load_manifest
from models.errors import CheckpointError
from models.files import write_text_atomic
from models.metrics import report

logger = logging.getLogger(__name__)


def device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def input_norm(model: nn.Module) -> tuple[float, float]:
    """The grey input's (mean, std) of a fusion model or baseline."""
    mean = float(torch.as_tensor(model.mean).flatten()[0])
    std = float(torch.as_tensor(model.std).flatten()[0])
    return mean, std


def evaluate_torch(model: nn.Module, data: Batches, batch: int = 128) -> np.ndarray:
    """Predicted labels for every item of ``data``."""
    model.eval()
    preds = []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = torch.arange(start, min(start + batch, len(data)))
            preds.append(model(data.prep(idx).to(device())).argmax(1).cpu().numpy())
    model.train()
    return np.concatenate(preds)


def checkpoint_batches(
    path: Path,
    rows: Sequence[ManifestRow],
    img_size: int | None = None,
    cache_dir: Path | None = None,
    *,
    crops: dict[int, np.ndarray] | None = None,
) -> tuple[nn.Module, Batches]:
    """A checkpoint's model (on ``device()``) and ``rows`` as its normalised batches, at
    ``img_size`` (None: the run's own). ``crops`` (size -> grey crops of ``rows``) keeps the
    decoded images across calls, so several checkpoints read the files once per size."""
    model, ckpt = model_from_checkpoint(path)
    size = img_size or run_img_size(ckpt, path)
    crops = {} if crops is None else crops
    if size not in crops:
        crops[size] = load_grey(rows, size, cache_dir)  # (N, size, size)
    mean, std = input_norm(model)
    labels = np.array([r.label for r in rows])
    return model.to(device()), Batches(crops[size], labels, mean, std)


def split_report(
    best: Path,
    data_dir: Path,
    split: str | None,
    img_size: int | None,
    cache_dir: Path | None,
    *,
    out: Path | None = None,
) -> dict[str, Any]:
    """Score ``best`` on ``split`` (every row if None) with PyTorch, no export (GPU sweeps,
    where exporting every run outlasts the lease): ``models.metrics.report`` ->
    ``out``, by default best.<split>.json (best.all.json) beside ``best``. ``img_size`` None:
    the run's own crop size."""
    rows = load_manifest(data_dir, split)
    model, data = checkpoint_batches(best, rows, img_size, cache_dir)
    labels = np.array([r.label for r in rows])
    preds = evaluate_torch(model, data)
    rep = report(labels, preds, [r.source for r in rows])
    path = out or best.with_name(f"best.{split or 'all'}.json")
    write_text_atomic(path, json.dumps(rep, indent=2) + "\n")
    logger.info("%s macro-F1 %.4f (PyTorch) -> %s", split, rep["macro_f1"], path)
    return rep


def run_img_size(ckpt: dict[str, Any], path: Path) -> int:
    """The crop size a checkpoint was trained at (its ``train_config``)."""
    size = (ckpt.get("train_config") or {}).get("img_size")
    if not isinstance(size, int) or size <= 0:
        raise CheckpointError(f"checkpoint {path} has no train_config.img_size; pass --img-size")
    return size


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.scoring", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="a run's best.pt (or last.pt)")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--split", default=None, help="only these rows (default: every row)")
    p.add_argument("--img-size", type=int, default=0, help="default: the run's own")
    p.add_argument("--out", type=Path, default=None, help="default: best.<split>.json beside it")
    args = p.parse_args(argv)
    size = args.img_size or None  # None: the run's own
    split_report(args.checkpoint, args.data, args.split, size, None, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scoring a model with PyTorch, no export: validation while training and ``--report-split``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.checkpoint import model_from_checkpoint
from models.data import Batches, load_grey, load_manifest
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


def split_report(
    best: Path, data_dir: Path, split: str, img_size: int, cache_dir: Path | None
) -> dict[str, Any]:
    """Score ``best`` on ``split`` with PyTorch, no export (GPU sweeps, where exporting every
    run outlasts the lease): ``models.metrics.report`` -> best.<split>.json."""
    rows = load_manifest(data_dir, split)
    model = model_from_checkpoint(best)[0].to(device())
    mean, std = input_norm(model)
    labels = np.array([r.label for r in rows])
    preds = evaluate_torch(model, Batches(load_grey(rows, img_size, cache_dir), labels, mean, std))
    rep = report(labels, preds, [r.source for r in rows])
    path = best.with_name(f"best.{split}.json")
    write_text_atomic(path, json.dumps(rep, indent=2) + "\n")
    logger.info("%s macro-F1 %.4f (PyTorch) -> %s", split, rep["macro_f1"], path)
    return rep

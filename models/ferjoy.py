"""Joy read by the FER2013 head (a diagnostic, not an exported model).

``python -m models.ferjoy --checkpoint CKPT --data DIR [--split NAME] --out REPORT.json``

A run trained with ``--fer-aux`` keeps a FER2013 head (seven basic emotions) beside its six-way
head, both on the same pooled features. The six-way head learns joy from FER2013/CK+ crops only,
so it can read "looks like FER2013" as joy; the FER2013 head learns happy against six other
expressions inside one source. This job scores, on a manifest folder, the six-way output with its
joy probability taken from the FER2013 head:

    P(joy) = P_fer(happy);  P(c) = (1 - P_fer(happy)) * P_six(c) / (1 - P_six(joy)), c != joy

and writes both reports (``ferjoy`` and ``six_way``, each in the ``models.evaluate`` format) to
REPORT.json. PyTorch, CPU. Validation joy crops are FER2013 training faces, which the FER2013
head trained on: its validation joy figures are inflated; the test split is clean.
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
from models.batches import Batches
from models.checkpoint import ckpt_crop_scale, load_checkpoint, model_from_checkpoint
from models.cli import entry_point
from models.data import (
    FER_CLASSES,
    check_framing,
    load_grey,
    load_manifest,
)
from models.emotion import LearningEmotionNet
from models.errors import CheckpointError
from models.files import write_text_atomic
from models.metrics import report
from models.scoring import input_norm

logger = logging.getLogger(__name__)

JOY, HAPPY = LABELS.index("joy"), FER_CLASSES.index("happy")


def joy_from_fer(six: torch.Tensor, fer: torch.Tensor) -> torch.Tensor:
    """Six-way probabilities (B, 6) with joy replaced by FER2013 happy (B, 7), renormalised."""
    happy = fer[:, HAPPY : HAPPY + 1]
    rest = six.clone()
    rest[:, JOY] = 0.0
    rest = rest / rest.sum(1, keepdim=True).clamp_min(1e-12)
    out = (1.0 - happy) * rest
    out[:, JOY] = happy[:, 0]
    return out


def load_heads(ckpt_path: Path) -> tuple[LearningEmotionNet, nn.Linear, dict[str, Any]]:
    """The fusion model of a ``--fer-aux`` checkpoint, its FER2013 head, and the checkpoint."""
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("aux_head") is None:
        raise CheckpointError(
            f"checkpoint {ckpt_path} has no FER2013 head: train with --fer-aux (soups keep it)"
        )
    model = model_from_checkpoint(ckpt_path)[0].eval()
    if not isinstance(model, LearningEmotionNet):
        raise CheckpointError(f"checkpoint {ckpt_path} is not a fusion model")
    head = nn.Linear(model.num_features, len(FER_CLASSES))
    head.load_state_dict(ckpt["aux_head"])
    return model, head, ckpt


def probabilities(
    model: LearningEmotionNet, head: nn.Linear, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(six-way, FER2013) softmax probabilities on the normalised batch ``x``."""
    six, fer = [], []
    with torch.no_grad():
        for chunk in x.split(128):
            pooled = model.forward_head(model.forward_features(chunk), pre_logits=True)
            six.append(model.head(pooled).softmax(1))
            fer.append(head(pooled).softmax(1))
    return torch.cat(six), torch.cat(fer)


def score(ckpt_path: Path, data_dir: Path, split: str | None) -> dict[str, Any]:
    """Both reports of ``ckpt_path`` on ``data_dir`` (``split`` rows only, if given)."""
    model, head, ckpt = load_heads(ckpt_path)
    check_framing(data_dir, ckpt_crop_scale(ckpt), f"checkpoint {ckpt_path}")
    rows = load_manifest(data_dir, split)
    labels = np.array([r.label for r in rows])
    mean, std = input_norm(model)
    grey = load_grey(rows, int(ckpt["model_args"]["img_size"]))
    six, fer = probabilities(
        model, head, Batches(grey, labels, mean, std).prep(torch.arange(len(rows)))
    )
    sources = [r.source for r in rows]
    return {
        "checkpoint": str(ckpt_path),
        "data": str(data_dir),
        "split": split,
        "ferjoy": report(labels, joy_from_fer(six, fer).argmax(1).numpy(), sources),
        "six_way": report(labels, six.argmax(1).numpy(), sources),
    }


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m models.ferjoy", description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rep = score(args.checkpoint, args.data, args.split)
    write_text_atomic(args.out, json.dumps(rep, indent=2) + "\n")
    logger.info(
        "n=%d macro-F1: joy from the FER2013 head %.4f, six-way head %.4f -> %s",
        rep["ferjoy"]["n"],
        rep["ferjoy"]["macro_f1"],
        rep["six_way"]["macro_f1"],
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Prediction ensembles and test-time flip: score several runs' checkpoints as one model.

    python -m models.ensemble --checkpoints A.pt B.pt ... --data DIR [--split NAME] [--flip]
        [--out R.json]

A deep ensemble (Lakshminarayanan et al. 2017) averages the class probabilities of models
trained from different seeds; unlike a weight soup (``models.soup``) the members need no common
starting point, and the cost is one forward pass per member. With ``--flip`` every member's
probabilities are the mean over the face and its horizontal mirror (training flips faces, so
the mirror is an image of the same kind). Equal weights, nothing fitted: the test split can be
scored without touching what the members learned from.

Each member is read at its own crop size (its ``train_config``). The report has the keys of
``models.evaluate`` for the ensemble, plus ``ensemble``: the checkpoints, whether flip was on,
and every member's own macro-F1, per-source macro-F1, per-class F1 and confusion matrix
under the same flip setting, so one command gives the ensemble and the members it is compared
with. It goes to ``--out`` (default ``ensemble.<split>.json`` beside the first checkpoint).
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

from contract.labels import LABELS
from models.batches import Batches
from models.cli import entry_point
from models.data import ManifestRow, load_manifest
from models.errors import CheckpointError
from models.files import write_text_atomic
from models.metrics import report
from models.scoring import checkpoint_batches, device

logger = logging.getLogger(__name__)


class EnsembleProbs(nn.Module):
    """Logits models -> the mean of their probabilities (B, 6); with ``flip`` each member
    also sees the horizontal mirror of every face. ``models.export`` exports this module."""

    def __init__(self, members: Sequence[nn.Module], flip: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.flip = flip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Mean softmax over members (and views)."""
        views = [image, torch.flip(image, dims=[3])] if self.flip else [image]  # (B, 3, H, W)
        probs = [torch.softmax(m(v), dim=1) for m in self.members for v in views]  # (B, 6) each
        return torch.stack(probs).mean(0)  # (B, 6)


def class_probs(model: nn.Module, data: Batches, *, flip: bool, batch: int = 128) -> np.ndarray:
    """Softmax probabilities (N, 6) of ``model`` on every item of ``data``; with ``flip`` the
    mean of the image's and its horizontal mirror's."""
    probs = EnsembleProbs([model], flip=flip).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = torch.arange(start, min(start + batch, len(data)))
            out.append(probs(data.prep(idx).to(device())).cpu().numpy())  # (B, 6)
    return np.concatenate(out)  # (N, 6)


def member_probs(
    path: Path,
    rows: Sequence[ManifestRow],
    *,
    flip: bool,
    cache_dir: Path | None = None,
    crops: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """One checkpoint's probabilities (N, 6) on ``rows``, at the run's own crop size
    (``crops``: see ``models.scoring.checkpoint_batches``)."""
    model, data = checkpoint_batches(path, rows, None, cache_dir, crops=crops)
    return class_probs(model, data, flip=flip)


def summary(rep: dict[str, Any]) -> dict[str, Any]:
    """The figures a member is compared by: macro-F1, per-source macro-F1, per-class F1 and
    the confusion matrix."""
    return {
        "macro_f1": rep["macro_f1"],
        "confusion_matrix": rep["confusion_matrix"],
        "per_source_macro_f1": {s: v["macro_f1"] for s, v in rep["per_source"].items()},
        "per_class_f1": {k: v["f1"] for k, v in rep["per_class"].items()},
    }


def check_members(paths: Sequence[Path]) -> None:
    """At least one checkpoint, each an existing file given once (else CheckpointError)."""
    if not paths:
        raise CheckpointError("an ensemble needs at least one checkpoint (--checkpoints A.pt ...)")
    seen: set[Path] = set()
    for path in paths:
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} not found (expected a run's best.pt)")
        key = path.resolve()
        if key in seen:
            raise CheckpointError(f"checkpoint {path} is given twice; each member counts once")
        seen.add(key)


def ensemble_report(
    paths: Sequence[Path],
    data_dir: Path,
    split: str | None,
    *,
    flip: bool = False,
    out: Path | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Score the equal-weight ensemble of ``paths`` on ``split`` (every row if None) and
    write the report (see the module docstring) to ``out``."""
    check_members(paths)
    rows = load_manifest(data_dir, split)
    labels = np.array([r.label for r in rows])
    sources = [r.source for r in rows]
    members, total = [], np.zeros((len(rows), len(LABELS)))
    crops: dict[int, np.ndarray] = {}  # decoded once per crop size, shared by the members
    for path in paths:
        probs = member_probs(path, rows, flip=flip, cache_dir=cache_dir, crops=crops)  # (N, 6)
        total += probs
        rep = report(labels, probs.argmax(1), sources)
        members.append({"checkpoint": str(path), **summary(rep)})
        logger.info("member %s: %s macro-F1 %.4f", path, split or "all", rep["macro_f1"])
    rep = report(labels, (total / len(paths)).argmax(1), sources)
    mean_member = float(np.mean([m["macro_f1"] for m in members]))
    rep["ensemble"] = {
        "checkpoints": [str(p) for p in paths],
        "flip": flip,
        "split": split,
        "members": members,
        "members_mean_macro_f1": mean_member,
    }
    path = out or paths[0].with_name(f"ensemble.{split or 'all'}.json")
    write_text_atomic(path, json.dumps(rep, indent=2) + "\n")
    logger.info(
        "ensemble of %d%s: %s macro-F1 %.4f (members' mean %.4f) -> %s",
        len(paths),
        " with flip" if flip else "",
        split or "all",
        rep["macro_f1"],
        mean_member,
        path,
    )
    return rep


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.ensemble", description=__doc__)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True, help="runs' best.pt")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--split", default=None, help="only these rows (default: every row)")
    p.add_argument("--flip", action="store_true", help="also average each face's mirror image")
    p.add_argument("--out", type=Path, default=None, help="default: beside the first checkpoint")
    args = p.parse_args(argv)
    ensemble_report(args.checkpoints, args.data, args.split, flip=args.flip, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

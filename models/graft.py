"""Graft a trained global branch into a new fusion model.

``python -m models.graft --checkpoint GLOBAL.pt [--fusion gate|sum] [--fusion-init default|zero]
[--local-drop P] [--seed N] --out FUSION.pt``

GLOBAL.pt is a global-branch-only run's checkpoint (``--fusion none``), e.g. the ``last.pt``
of a long FER2013 pre-training ended with ``--finetune-steps 0``. The output is a fusion model
of the same size whose global branch and head are copied from it, and whose local (saliency)
branch and stage fusions are freshly initialised with ``--seed``; its SUN parameters are the
ones the global-only run fitted. ``python -m models.train ... --init FUSION.pt`` fine-tunes it.

The point is a paired test of the saliency branch: the fusion model starts from exactly the
global features the global-only model starts from, so fine-tuning both from one pre-training
shows what the local branch adds on top of them. With ``--fusion-init zero`` the TC convs
start at 0, so each stage's E_i starts as G_i plus the refine term.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import build_model, file_sha256, load_checkpoint, save_checkpoint
from models.cli import entry_point
from models.errors import CheckpointError

logger = logging.getLogger(__name__)


def graft(
    source: Path,
    out: Path,
    *,
    fusion: str = "gate",
    fusion_init: str = "default",
    local_drop: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Write a fusion checkpoint at ``out`` whose global branch and head come from ``source``;
    returns its payload."""
    ckpt = load_checkpoint(source)
    args = dict(ckpt["model_args"])
    if args.get("fusion") != "none":
        raise CheckpointError(
            f"checkpoint {source} is not a global-branch-only model (fusion "
            f"{args.get('fusion')!r}, expected 'none'): train it with --fusion none"
        )
    if fusion == "none":
        raise CheckpointError("--fusion must be gate or sum: 'none' would graft nothing")
    args |= {"fusion": fusion, "fusion_init": fusion_init, "local_drop": local_drop}
    torch.manual_seed(seed)
    model = build_model(ckpt["arch"], args)
    result = model.load_state_dict(ckpt["model"], strict=False)
    fresh = ("local_branch.", "fusions.")  # SUN saliency has no state: rebuilt from args
    stray = [k for k in result.missing_keys if not k.startswith(fresh)]
    if result.unexpected_keys or stray:
        raise CheckpointError(
            f"checkpoint {source} weights do not fit the global branch of a {fusion} model: "
            f"unexpected {result.unexpected_keys[:5]}, missing {stray[:5]}"
        )
    payload = {
        "arch": ckpt["arch"],
        "model_args": args,
        "model": model.state_dict(),
        "num_classes": ckpt.get("num_classes", args.get("num_classes")),
        "train_config": ckpt.get("train_config", {}),
        "graft": {
            "source": str(source),
            "sha256": file_sha256(source),
            "seed": seed,
            "fresh": sorted({k.split(".")[0] for k in result.missing_keys}),
        },
    }
    if "crop_scale" in ckpt:
        payload["crop_scale"] = ckpt["crop_scale"]
    save_checkpoint(out, payload)
    logger.info("grafted %s's global branch into a %s model -> %s", source, fusion, out)
    return payload


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.graft", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="a --fusion none checkpoint")
    p.add_argument("--fusion", choices=("gate", "sum"), default="gate")
    p.add_argument("--fusion-init", choices=("default", "zero"), default="default")
    p.add_argument("--local-drop", type=float, default=0.0, help="saliency-branch dropout")
    p.add_argument("--seed", type=int, default=0, help="draws the fresh local branch")
    p.add_argument("--out", type=Path, required=True, help="the fusion checkpoint to write")
    return p.parse_args(argv)


@entry_point
def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    graft(
        a.checkpoint,
        a.out,
        fusion=a.fusion,
        fusion_init=a.fusion_init,
        local_drop=a.local_drop,
        seed=a.seed,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

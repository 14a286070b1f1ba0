"""CLI of the latent DDPM augmenter.

    python -m models.augment train  --out runs/ddpm [--ddpm-minutes 30 ...] [--resume]
    python -m models.augment sample --checkpoint runs/ddpm/ddpm.pt \\
        --per-class confusion:400,thinking:250,boredom:250 --out runs/ddpm-samples
    python -m models.augment check  --samples runs/ddpm-samples --checkpoint runs/ddpm/ddpm.pt \\
        --out nn.json

``sample`` writes a manifest folder (split ``train``, source ``ddpm``) for
``python -m models.train --synthetic DIR``; ``check`` writes the nearest-neighbour
memorisation report (see ``models.augment.quality``).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import fields
from pathlib import Path

import torch

from models.augment.job import (
    AugmentConfig,
    Augmenter,
    SamplerSettings,
    parse_counts,
    sample_folder,
    train_augmenter,
)
from models.augment.quality import nearest_neighbour_report, reconstruction_report
from models.cli import entry_point
from models.files import write_text_atomic
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.augment", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train the autoencoder and the DDPM")
    tr.add_argument("--out", type=Path, required=True)
    tr.add_argument("--resume", action="store_true", help="continue OUT/ddpm.pt")
    for f in fields(AugmentConfig):
        tr.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    sa = sub.add_parser("sample", help="write sampled crops as a manifest folder")
    sa.add_argument("--checkpoint", type=Path, required=True)
    sa.add_argument("--per-class", required=True, help="e.g. confusion:400,thinking:250")
    sa.add_argument("--out", type=Path, required=True)
    sa.add_argument("--seed", type=int, default=0)
    for f in fields(SamplerSettings):
        sa.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ch = sub.add_parser("check", help="nearest-neighbour memorisation report")
    ch.add_argument("--samples", type=Path, required=True)
    ch.add_argument("--data", type=Path, help="the training manifest folder")
    ch.add_argument("--img-size", type=int, default=64)
    ch.add_argument(
        "--checkpoint", type=Path, help="also report its autoencoder's error on val crops"
    )
    ch.add_argument("--out", type=Path, required=True)
    return p


def run(args: argparse.Namespace) -> None:
    """Carry out one parsed command."""
    if args.cmd == "train":
        names = {f.name for f in fields(AugmentConfig)}
        cfg = AugmentConfig(**{k: v for k, v in vars(args).items() if k in names})
        path = train_augmenter(cfg, args.out, resume=args.resume)
        logger.info("augmenter checkpoint %s", path)
    elif args.cmd == "sample":
        aug = Augmenter.load(args.checkpoint)
        counts = parse_counts(args.per_class)
        names = {f.name for f in fields(SamplerSettings)}
        settings = SamplerSettings(**{k: v for k, v in vars(args).items() if k in names})
        sample_folder(aug, counts, args.out, settings, seed=args.seed)
        logger.info("samples in %s", args.out)
    else:
        data = args.data or ModelsSettings().learning_emotions_dir
        rep = nearest_neighbour_report(args.samples, data, args.img_size)
        if args.checkpoint is not None:
            ae = Augmenter.load(args.checkpoint).ae
            rep["autoencoder_val_rms"] = reconstruction_report(ae, data)
        write_text_atomic(args.out, json.dumps(rep, indent=2) + "\n")
        logger.info("%s", json.dumps(rep["per_class"]))


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad inputs end with one line naming them, exit status 2."""
    args = _parser().parse_args(argv)
    settings = ModelsSettings()
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Self-describing checkpoints: model arch + args, train config, labels, progress; atomic writes."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contract.labels import LABELS
from models.data import SHARED_CROP_SCALE
from models.emotion import BASELINE_PREFIX, BaselineNet, FusionConfig, LearningEmotionNet
from models.errors import CheckpointError

logger = logging.getLogger(__name__)

CKPT_FORMAT = "emo-ckpt/1"


def model_args_of(model: nn.Module) -> dict[str, Any]:
    """The arguments that rebuild ``model`` (stored in checkpoints and sidecars)."""
    if isinstance(model, LearningEmotionNet):
        return model.cfg.to_dict()
    if isinstance(model, BaselineNet):
        return {"name": model.name, "img_size": model.img_size}
    raise CheckpointError(f"cannot describe model of type {type(model).__name__}")


def build_model(arch: str, model_args: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) model from a checkpoint's ``arch`` and ``model_args``."""
    try:
        if arch.startswith(BASELINE_PREFIX):
            return BaselineNet(**model_args)
        return LearningEmotionNet(FusionConfig.from_dict(model_args))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot rebuild {arch!r} from {model_args!r}: {exc}") from exc


def save_checkpoint(path: Path, payload: dict[str, Any], fmt: str = CKPT_FORMAT) -> None:
    """Write atomically: temp file in the same folder, fsync, rename over ``path``.

    ``fmt`` names the payload's format (the DDPM job writes its own, ``emo-ddpm/1``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            torch.save({"format": fmt, "labels": list(LABELS), **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_checkpoint(path: Path, fmt: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """Read a checkpoint of format ``fmt`` holding ``keys`` (and our label order), or raise
    naming the file and what is wrong."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise CheckpointError(f"checkpoint {path} is not an {fmt} checkpoint")
    for key in (*keys, "labels"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}")
    if tuple(ckpt["labels"]) != LABELS:
        raise CheckpointError(f"checkpoint {path} labels {ckpt['labels']} != {LABELS}")
    return ckpt


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and validate a checkpoint written by ``save_checkpoint``."""
    return read_checkpoint(path, CKPT_FORMAT, ("arch", "model_args", "model"))


def model_from_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint with its weights loaded, in eval mode."""
    ckpt = load_checkpoint(path)
    model = build_model(ckpt["arch"], ckpt["model_args"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} weights do not fit its model: {exc}") from exc
    return model.eval(), ckpt


def ckpt_crop_scale(ckpt: dict[str, Any]) -> float:
    """The face-crop scale (square side / detected box side) a checkpoint was trained with;
    checkpoints older than the field were trained on the shared crops' framing."""
    return float(ckpt.get("crop_scale", SHARED_CROP_SCALE))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

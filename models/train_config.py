"""What a training run depends on: ``TrainConfig`` (stored in its checkpoints), presets, the
learning-rate schedule, each phase's persisted state and the command line that builds them."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from models.errors import ConfigError
from models.settings import ModelsSettings


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on (stored in its checkpoints)."""

    arch: str = "learning_emotion_small"
    fusion: str = "gate"
    img_size: int = 96
    window_size: int = 0  # 0 = the variant's default (fusion models only)
    stem: str = "patch"  # fusion models: "patch" (Swin 4x4 patchify) or "conv" (Xiao et al.)
    # gated fusion models: "zero" starts the TC conv at 0 (FusionConfig.fusion_init; not --init)
    fusion_init: str = "default"
    local_drop: float = 0.0  # fusion models: share of training faces without saliency (ModDrop)
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    schedule: str = "cosine"  # cosine over the budget, or "plateau" (paper: x0.9 / 5 evals)
    warmup_frac: float = 0.05
    label_smoothing: float = 0.1
    class_weighting: bool = True
    # exponent of the inverse-frequency class weights (1 = inverse frequency, 0.5 = milder)
    class_weight_power: float = 1.0
    # fine-tuning: weigh each source/label group alike instead of each class (batches.group_weights)
    group_weighting: bool = False
    # ... and with it: every class the same total weight, split alike among its groups
    group_within_class: bool = False
    pretrain_minutes: float = 10.0
    pretrain_steps: int = 100_000
    # FER2013 is 1.5 % disgust: inverse weights make one disgust face count 16.5 happy ones
    pretrain_class_weighting: bool = False
    init_pretrain: bool = False  # run the FER2013 phase on the --init model too
    pretrain_lr: float = 0.0  # 0 = --lr
    finetune_minutes: float = 30.0
    finetune_steps: int = 100_000
    eval_every: int = 100
    data_dir: str = ""
    fer_dir: str = ""
    init: str = ""  # start from this checkpoint's or ONNX model's weights (no pre-training)
    degrade: float = 0.0  # probability of resolution jitter per training image
    erase: float = 0.0  # probability of random erasing per training image
    photometric: float = 0.0  # probability of a camera exposure/gamma change per image
    zoom: float = 0.0  # probability of a face-size change per image
    zoom_max: float = 1.25  # ... by a factor log-uniform in [1/zoom_max, zoom_max]
    report_split: str = ""  # after training, score best.pt on it (PyTorch): best.<split>.json
    # FER2013 training faces as fine-tuning extras, e.g. "neutral:focus,angry:confusion"
    fer_extra: str = ""
    fer_extra_n: int = 250  # faces per mapped FER2013 class (random, by seed)
    # weight of a FER2013 7-class loss trained jointly while fine-tuning (own head, not
    # exported): keeps the features tied to thousands of FER2013 faces' expressions
    fer_aux: float = 0.0
    synthetic: str = ""  # a manifest folder (e.g. DDPM samples) joining the train split only
    photo_norm: bool = False  # fusion: standardise each image's brightness/contrast in-graph
    regroup: str = ""  # move subjects between train and val, e.g. "xhy1:train" (data.regroup)
    # fine-tuning: score and save an exponential moving average of the weights (0 = off)
    ema: float = 0.0
    # fine-tuning: weight of a gradient-reversed head that predicts each crop's source from the
    # pooled features among the sources its own class has (a class-conditional adversary, so
    # features of one class cannot tell its sources apart; 0 = off; fusion models only)
    source_adversary: float = 0.0
    # fine-tuning: mixup (Zhang et al. 2018) with lambda ~ Beta(a, a): each batch is blended
    # with a shuffled copy of itself and the loss with both label sets (0 = off)
    mixup: float = 0.0
    # "bf16": forward passes and losses of training steps under bfloat16 autocast (faster on
    # CPUs with AMX or AVX-512 BF16, and on GPUs); weights, optimiser, scoring stay fp32
    precision: str = "fp32"
    # 4-D weights (so convolutions and their outputs) in channels-last (NHWC) memory: faster
    # convolutions on CPUs (oneDNN); the numbers differ from the default layout only by rounding
    channels_last: bool = False
    # fine-tuning: distil from these trained six-class checkpoints (comma-separated; their mean
    # softened probabilities, models.distill) with weight `distill` at temperature `distill_temp`
    teachers: str = ""
    distill: float = 0.0
    distill_temp: float = 2.0


@dataclass
class Phase:
    """Training state of one phase (persisted in checkpoints)."""

    name: str
    step: int = 0
    elapsed: float = 0.0
    best: float = -1.0
    since_best: int = 0
    lr_scale: float = 1.0
    done: bool = False


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """The layout ``--channels-last`` asks for; otherwise each tensor keeps its own."""
    return torch.channels_last if cfg.channels_last else torch.preserve_format


def lr_factor(cfg: TrainConfig, phase: Phase, progress: float) -> float:
    """Multiplier of ``cfg.lr``: warmup + cosine over progress, or the plateau scale."""
    if cfg.schedule == "plateau":
        return phase.lr_scale
    if progress < cfg.warmup_frac:
        return max(progress / cfg.warmup_frac, 0.01)
    t = (progress - cfg.warmup_frac) / max(1e-9, 1.0 - cfg.warmup_frac)
    return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


PRESETS: dict[str, dict[str, Any]] = {
    # tuned from-scratch CPU recipe: higher lr + cosine, fits 45 min on 2 cores
    "cpu": {},
    # Ji et al. 2026 §3.1: AdamW lr 1e-5, wd 1e-3, batch 32, x0.9 after 5 evals w/o improvement
    "paper": {
        "lr": 1e-5,
        "weight_decay": 1e-3,
        "schedule": "plateau",
        "warmup_frac": 0.0,
        "label_smoothing": 0.0,
        "finetune_steps": 200 * 162,  # 200 epochs of the training split
        "eval_every": 162,  # one epoch (5,185 crops / 32), so the plateau rule counts epochs
    },
}


def _yes_no(text: str) -> bool:
    if text.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise argparse.ArgumentTypeError(f"expected yes/no, got {text!r}")
    return text.lower() in ("1", "true", "yes", "on")


def parse_cli(
    argv: list[str] | None, description: str | None = None
) -> tuple[TrainConfig, Path, Path | None]:
    """``python -m models.train``'s command line: a ``TrainConfig`` (a preset with every
    field as a flag over it), the run folder and the checkpoint to resume, if any. Bad values
    raise ``ConfigError`` naming the flag."""
    p = argparse.ArgumentParser(prog="python -m models.train", description=description)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", type=Path, help="run folder (default runs/<arch>-<fusion>-s<seed>)")
    p.add_argument("--resume", type=Path, help="a last.pt to continue")
    for f in TrainConfig.__dataclass_fields__.values():
        kind = _yes_no if isinstance(f.default, bool) else type(f.default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    args = p.parse_args(argv)
    over = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    cfg = replace(
        TrainConfig(**PRESETS[args.preset]), **{k: v for k, v in over.items() if v is not None}
    )
    if cfg.schedule not in ("cosine", "plateau"):
        raise ConfigError(f"--schedule must be cosine or plateau, got {cfg.schedule!r}")
    if cfg.stem not in ("patch", "conv"):
        raise ConfigError(f"--stem must be patch or conv, got {cfg.stem!r}")
    if cfg.fusion_init not in ("default", "zero"):
        raise ConfigError(f"--fusion-init must be default or zero, got {cfg.fusion_init!r}")
    if cfg.fusion_init == "zero" and (cfg.fusion != "gate" or cfg.arch.startswith("baseline:")):
        model = f"{cfg.arch} --fusion {cfg.fusion}"
        raise ConfigError(f"--fusion-init zero needs a gated fusion model, not {model}")
    if cfg.local_drop and (cfg.fusion == "none" or cfg.arch.startswith("baseline:")):
        raise ConfigError(f"--local-drop needs a fusion model with a local branch, not {cfg.arch}")
    if not 0.0 <= cfg.local_drop < 1.0:
        raise ConfigError(f"--local-drop must be a share in [0, 1), got {cfg.local_drop}")
    if not 0.0 <= cfg.ema < 1.0:
        raise ConfigError(f"--ema must be a decay in [0, 1) (0 = off), got {cfg.ema}")
    if cfg.source_adversary < 0:
        raise ConfigError(f"--source-adversary must be >= 0 (0 = off), got {cfg.source_adversary}")
    if cfg.precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision must be fp32 or bf16, got {cfg.precision!r}")
    if cfg.mixup < 0:
        raise ConfigError(f"--mixup must be a Beta parameter > 0 (0 = off), got {cfg.mixup}")
    if cfg.mixup > 0 and cfg.source_adversary > 0:
        raise ConfigError("--mixup cannot be combined with --source-adversary (blended crops)")
    if bool(cfg.teachers) != (cfg.distill > 0):
        raise ConfigError("--teachers A.pt[,B.pt] and --distill W (0 < W <= 1) go together")
    if not 0.0 <= cfg.distill <= 1.0 or cfg.distill_temp <= 0:
        got = f"got --distill {cfg.distill} --distill-temp {cfg.distill_temp}"
        raise ConfigError(f"--distill must be in (0, 1] and --distill-temp > 0, {got}")
    for path in filter(None, cfg.teachers.split(",")):
        if not Path(path).is_file():
            raise ConfigError(f"--teachers: checkpoint {path} not found (expected a run's best.pt)")
    if not 0.0 <= cfg.class_weight_power <= 1.0:
        power = cfg.class_weight_power
        raise ConfigError(
            f"--class-weight-power must be in [0, 1] (1 = inverse frequency), got {power}"
        )
    if cfg.group_within_class and not cfg.group_weighting:
        raise ConfigError("--group-within-class yes needs --group-weighting yes")
    if not 1.0 <= cfg.zoom_max <= 2.0:
        raise ConfigError(f"--zoom-max must be in [1, 2] (a factor), got {cfg.zoom_max}")
    tag = cfg.arch.replace("baseline:", "") + ("" if "baseline:" in cfg.arch else f"-{cfg.fusion}")
    tag += "-conv" if cfg.stem == "conv" and "baseline:" not in cfg.arch else ""
    out = args.out or ModelsSettings().runs_dir / f"{tag}-s{cfg.seed}"
    return cfg, out, args.resume

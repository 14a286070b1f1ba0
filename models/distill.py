"""Knowledge distillation from trained teachers (Hinton, Vinyals and Dean 2015).

``python -m models.train ... --teacher A.pt [--teacher B.pt] --distill W --distill-temp T``:
while fine-tuning, the student also matches the teachers' softened class probabilities on the
same augmented batch. With several teachers their probabilities are averaged first, as
``models.ensemble`` averages an ensemble's members, so one student can learn what an
ensemble of different models knows and be exported, shipped and run as one model. The loss
is ``(1 - W) * CE(student, labels) + W * T^2 * KL(teachers_T || student_T)``; teachers stay
frozen in eval mode and are not part of the student's checkpoint (their paths are, in its
training config).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from contract.labels import LABELS
from models.checkpoint import model_from_checkpoint
from models.errors import ConfigError
from models.scoring import device, input_norm
from models.train_config import TrainConfig


class Teachers:
    """Frozen teacher models whose mean softened probabilities a student learns from."""

    def __init__(self, members: Sequence[nn.Module], weight: float, temperature: float) -> None:
        if not members:
            raise ConfigError("distillation needs at least one teacher (--teacher A.pt)")
        if not 0.0 < weight <= 1.0:
            raise ConfigError(f"--distill must be a weight in (0, 1], got {weight}")
        if temperature <= 0:
            raise ConfigError(f"--distill-temp must be > 0, got {temperature}")
        self.members = [m.eval().requires_grad_(False) for m in members]
        self.weight = weight
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg: TrainConfig, norm: tuple[float, float]) -> Teachers:
        """The teachers of ``cfg.teachers`` (best.pt checkpoints, comma-separated), each
        checked to take the student's input (``cfg.img_size`` and the grey normalisation
        ``norm``) and to predict the six learning emotions; else ``ConfigError`` naming the
        file."""
        paths = [Path(t) for t in cfg.teachers.split(",") if t]
        return cls.load(
            paths,
            norm=norm,
            img_size=cfg.img_size,
            weight=cfg.distill,
            temperature=cfg.distill_temp,
        )

    @classmethod
    def load(
        cls,
        paths: Sequence[Path],
        *,
        norm: tuple[float, float],
        img_size: int,
        weight: float,
        temperature: float,
    ) -> Teachers:
        """Teachers from ``paths`` (see ``from_config``)."""
        members = []
        for path in paths:
            with torch.random.fork_rng(devices=[]):  # building draws weights: keep the
                model, ckpt = model_from_checkpoint(path)  # student's draws as without teachers
            size = int(ckpt["model_args"].get("img_size", 0))
            if size != img_size:
                raise ConfigError(f"teacher {path} takes {size} px faces, the student {img_size}")
            if ckpt.get("num_classes", len(LABELS)) != len(LABELS):
                raise ConfigError(f"teacher {path} is not a six-class model (expected a best.pt)")
            mean, std = input_norm(model)
            if abs(mean - norm[0]) > 1e-6 or abs(std - norm[1]) > 1e-6:
                raise ConfigError(
                    f"teacher {path} normalises input with ({mean}, {std}), the student with {norm}"
                )
            members.append(model.to(device()))
        return cls(members, weight, temperature)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Mean softened probabilities (B, 6) of the teachers on batch ``x`` (B, 3, H, W)."""
        with torch.no_grad():
            out = [torch.softmax(m(x) / self.temperature, dim=1) for m in self.members]
        return torch.stack(out).mean(0)

    def blend(self, hard: torch.Tensor, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The student's loss on batch ``x``: its label loss ``hard`` blended with the
        distillation term on its ``logits`` (B, 6)."""
        t = self.temperature
        log_student = torch.log_softmax(logits / t, dim=1)
        soft = nn.functional.kl_div(log_student, self.probs(x), reduction="batchmean")
        return (1.0 - self.weight) * hard + self.weight * t * t * soft

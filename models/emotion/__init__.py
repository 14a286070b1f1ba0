"""Learning-emotion networks: the dual-branch Swin fusion model and timm baselines.

``create_model(arch, **kwargs)`` builds any of them; ``arch`` is a fusion variant
(``learning_emotion_small``, ``learning_emotion_tiny``, with ``fusion=gate|sum|none``) or
``baseline:<name>`` (see ``models.emotion.baselines.BASELINES``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from models.emotion.baselines import BASELINES, BaselineNet
from models.emotion.fusion import (
    VARIANTS,
    FusionConfig,
    LearningEmotionNet,
    create_fusion_model,
)
from models.errors import ConfigError

BASELINE_PREFIX = "baseline:"


def check_arch(arch: str) -> None:
    """ConfigError unless ``arch`` names a fusion variant or ``baseline:<known name>``."""
    if arch in VARIANTS:
        return
    if arch.startswith(BASELINE_PREFIX):
        name = arch.removeprefix(BASELINE_PREFIX)
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
        return
    known = sorted(VARIANTS) + [BASELINE_PREFIX + b for b in sorted(BASELINES)]
    raise ConfigError(f"unknown model architecture {arch!r}; known: {known}")


def create_model(arch: str, **kwargs: Any) -> nn.Module:
    """Fusion variant or ``baseline:<name>`` -> an untrained model (pretrained=False)."""
    check_arch(arch)
    if arch in VARIANTS:
        return create_fusion_model(arch, **kwargs)
    return BaselineNet(arch.removeprefix(BASELINE_PREFIX), **kwargs)


__all__ = [
    "BASELINES",
    "VARIANTS",
    "BaselineNet",
    "FusionConfig",
    "LearningEmotionNet",
    "check_arch",
    "create_fusion_model",
    "create_model",
]

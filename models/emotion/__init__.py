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


def create_model(arch: str, **kwargs: Any) -> nn.Module:
    """Fusion variant or ``baseline:<name>`` -> an untrained model (pretrained=False)."""
    if arch in VARIANTS:
        return create_fusion_model(arch, **kwargs)
    if arch.startswith(BASELINE_PREFIX):
        return BaselineNet(arch.removeprefix(BASELINE_PREFIX), **kwargs)
    known = sorted(VARIANTS) + [BASELINE_PREFIX + b for b in sorted(BASELINES)]
    raise ConfigError(f"unknown model architecture {arch!r}; known: {known}")


__all__ = [
    "BASELINES",
    "VARIANTS",
    "BaselineNet",
    "FusionConfig",
    "LearningEmotionNet",
    "create_fusion_model",
    "create_model",
]

"""timm baselines (Ji et al. 2026, Table 1 families) behind the same input contract.

Each takes the same normalised (B, 3, H, W) input as the fusion model and returns logits;
all are built with ``pretrained=False`` (no weights can be downloaded here).
"""

from __future__ import annotations

from typing import Any, cast

import timm
import torch
from torch import nn

from contract.labels import LABELS
from models.emotion.fusion import GREY_MEAN, GREY_STD
from models.errors import ConfigError

# name -> (timm model name, extra kwargs)
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("resnet50", {}),
    "resnet18": ("resnet18", {}),
    "vgg16": ("vgg16", {}),
    "efficientnet_b0": ("efficientnet_b0", {}),
    "vit_tiny": ("vit_tiny_patch16_224", {"img_size": None}),  # None: the run's img_size
    "convnext_atto": ("convnext_atto", {}),
    "convnext_nano": ("convnext_nano", {}),
    # maxvit: timm derives window and grid (img_size / 32) from img_size, so it must be the
    # run's: a fixed 128 gives 4x4 windows that a 64 px input's 2x2 stage-4 map cannot hold
    "maxvit_nano": ("maxvit_nano_rw_256", {"img_size": None}),
}


class BaselineNet(nn.Module):
    """A timm classifier with the fusion model's interface and config dict."""

    def __init__(self, name: str, img_size: int = 96, num_classes: int = len(LABELS)) -> None:
        super().__init__()
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
        timm_name, extra = BASELINES[name]
        self.name = name
        if "img_size" in extra:
            extra = {**extra, "img_size": extra["img_size"] or img_size}
        self.img_size = int(extra.get("img_size", img_size))
        self.mean, self.std = GREY_MEAN, GREY_STD
        self.net = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **extra)

    def reset_classifier(self, num_classes: int) -> None:
        """New head (FER2013 -> learning emotions)."""
        cast(Any, self.net).reset_classifier(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        out: torch.Tensor = self.net(x)
        return out

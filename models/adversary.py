"""A class-conditional source adversary for fine-tuning (``--source-adversary``).

In the shared data each class comes from a few sources (joy: FER2013 and CK+; focus: AffectNet,
DAiSEE and the webcam; drowsy: the webcam and YawDD), and a model can learn a source's look
instead of the expression. This head predicts a crop's source from the pooled features, but
only among the sources its own class has, through a gradient reversal layer (Ganin & Lempitsky
2015, conditioned on the label): the head learns to tell the sources of one class apart, the
features are pushed to make that impossible, so a class's features cannot carry its source.
Classes with one source add nothing. The head is not part of the exported model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient times ``-scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged, with its gradient reversed and scaled by ``scale``."""
    return _Reverse.apply(x, scale)


def ramp(progress: float) -> float:
    """DANN's adversary schedule, 2 / (1 + exp(-10 p)) - 1: 0 at the start, 0.99 from p = 0.5."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class SourceAdversary(nn.Module):
    """A linear head: pooled features -> source logits for every class, masked to the class's
    own sources (``mask[c, s]``: class ``c`` has training crops from source ``s``)."""

    mask: torch.Tensor

    def __init__(self, features: int, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.bool())
        self.head = nn.Linear(features, mask.numel())

    @classmethod
    def for_data(
        cls, features: int, labels: np.ndarray, sources: np.ndarray, n_classes: int
    ) -> SourceAdversary:
        """The head for training rows with these labels and source ids."""
        mask = torch.zeros(n_classes, int(sources.max()) + 1, dtype=torch.bool)
        y, s = (torch.from_numpy(a.astype(np.int64)) for a in (labels, sources))
        mask[y, s] = True
        return cls(features, mask)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> SourceAdversary:
        """Rebuild a saved head (its mask is in the state)."""
        adv = cls(state["head.weight"].shape[1], state["mask"])
        adv.load_state_dict(state)
        return adv

    def loss(
        self, pooled: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Cross-entropy of the source among the class's sources, over the crops whose class
        has two or more; the features receive its gradient reversed and times ``scale``."""
        own = self.mask[labels]  # (B, S): the sources of each crop's class
        keep = own.sum(dim=1) > 1
        if not bool(keep.any()):
            return pooled.sum() * 0.0  # no class here has two sources
        n_classes, n_sources = self.mask.shape
        y = labels[keep]
        logits = self.head(reverse_gradient(pooled[keep], scale)).view(-1, n_classes, n_sources)
        logits = logits[torch.arange(len(y), device=y.device), y]
        logits = logits.masked_fill(~own[keep], float("-inf"))
        return nn.functional.cross_entropy(logits, sources[keep])

"""Training and scoring batches of grey face crops, the per-sample loss weights they carry, and
mixup's draws."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.errors import DataError


class Batches:
    """Grey uint8 images (N, H, W) + labels -> normalised (B, 3, H, W) batches, shuffled."""

    def __init__(
        self,
        grey: np.ndarray,
        labels: np.ndarray,
        mean: float,
        std: float,
        weights: np.ndarray | None = None,
        *,
        sources: np.ndarray | None = None,
    ) -> None:
        self.x = torch.from_numpy(grey)  # (N, H, W) uint8
        self.y = torch.from_numpy(labels.astype(np.int64))
        self.mean, self.std = mean, std
        # per-sample loss weights (group_weights), or None: the trainer's class weights
        self.w = None if weights is None else torch.from_numpy(weights.astype(np.float32))
        # per-sample source ids (for --source-adversary), or None
        self.s = None if sources is None else torch.from_numpy(sources.astype(np.int64))
        self.order = torch.empty(0, dtype=torch.long)
        self.pos = 0
        self.last = self.order  # indices of the batch ``next`` handed out last

    def __len__(self) -> int:
        return len(self.y)

    def class_weights(self, n_classes: int, power: float = 1.0) -> torch.Tensor:
        """Inverse-frequency class weights (n_classes,) raised to ``power`` (1 = inverse
        frequency, 0.5 = its square root, 0 = all alike), mean 1 (absent classes count once)."""
        counts = torch.bincount(self.y, minlength=n_classes).float().clamp_min(1)
        w = (counts.sum() / counts) ** power
        return w / w.mean()

    def prep(self, idx: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, H, W) for the given indices."""
        x = self.x[idx].float().div_(255.0).sub_(self.mean).div_(self.std)  # (B, H, W)
        return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()  # (B, 3, H, W)

    def next(
        self, size: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A random batch (reshuffled each pass): images, labels, per-sample weights or None."""
        if self.pos + size > len(self.order):
            self.order = torch.randperm(len(self.y), generator=gen)
            self.pos = 0
        idx = self.order[self.pos : self.pos + size]
        self.pos += size
        self.last = idx
        return self.prep(idx), self.y[idx], None if self.w is None else self.w[idx]


def group_weights(
    groups: Sequence[str], classes: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Per-sample weights that give every group (e.g. source + label) the same total weight,
    mean 1. With ``source/label`` groups each source's classes weigh alike inside it, so a
    source cue cannot tilt the class decision within that source the way global class
    weights do (boredom, 363 training crops, all from AffectNet, which has as many focus
    crops, would otherwise weigh 6.7x each AffectNet focus crop).

    With ``classes`` (each row's class) every class first gets the same total weight, as
    with class weights, and splits it equally among its groups: a class found in one source
    (confusion) keeps its share instead of weighing as one group among many, and AffectNet's
    boredom crops weigh 3x its focus crops instead of 6.7x (focus has three sources)."""
    names, inverse, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    if len(names) == 0:
        raise DataError("no training rows to weigh")
    parts = np.full(len(names), len(names))  # each group's share of the total: 1 / parts
    if classes is not None:
        if len(classes) != len(inverse):
            raise DataError(f"{len(classes)} classes for {len(inverse)} grouped rows")
        cls = np.asarray(classes, np.int64)
        of_group = np.zeros(len(names), np.int64)
        of_group[inverse] = cls
        if np.any(cls != of_group[inverse]):
            raise DataError("a group holds rows of more than one class")
        kinds, per_class = np.unique(of_group, return_counts=True)
        parts = len(kinds) * per_class[np.searchsorted(kinds, of_group)]
    per_group = len(inverse) / (parts * counts)
    return per_group[inverse].astype(np.float32)


def mixup_draw(gen: torch.Generator, alpha: float, n: int) -> tuple[float, torch.Tensor]:
    """Mixup's blend weight lambda ~ Beta(alpha, alpha) and partner order for a batch of ``n``,
    both drawn from ``gen`` (a training run's generator, so a resumed run draws the same)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    return lam, torch.randperm(n, generator=gen)

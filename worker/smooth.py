"""Per-student exponential moving average with a time constant (frame-rate independent)."""

from __future__ import annotations

import math

import numpy as np


class EmaSmoother:
    """``s <- s + a (x - s)`` with ``a = 1 - exp(-dt / tau)``; tau = 0 means no smoothing.

    Keys are student codes (or ``track:<id>`` for unseated faces); a key unseen for
    ``forget_after_s`` starts afresh.
    """

    def __init__(self, tau_s: float, forget_after_s: float = 30.0) -> None:
        self.tau_s = tau_s
        self.forget_after_s = forget_after_s
        self._state: dict[str, tuple[np.ndarray, float]] = {}

    def reset(self) -> None:
        """Forget every key."""
        self._state.clear()

    def update(self, key: str, probs: np.ndarray, t: float) -> np.ndarray:
        """The smoothed distribution for ``key`` after observing ``probs`` at time ``t``."""
        prev = self._state.get(key)
        if prev is None or self.tau_s == 0.0 or t - prev[1] > self.forget_after_s or t < prev[1]:
            value = probs.astype(np.float64)
        else:
            alpha = 1.0 - math.exp(-(t - prev[1]) / self.tau_s)
            value = prev[0] + alpha * (probs - prev[0])
        self._state[key] = (value, t)
        return value

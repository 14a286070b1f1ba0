"""Privacy modes: the stricter of classroom and session wins."""

from __future__ import annotations

from contract import PrivacyMode

_ORDER = {PrivacyMode.PER_STUDENT: 0, PrivacyMode.AGGREGATE_ONLY: 1, PrivacyMode.OFF: 2}


def stricter(*modes: str | PrivacyMode) -> PrivacyMode:
    """The most restrictive of ``modes`` (per_student < aggregate_only < off)."""
    return max((PrivacyMode(m) for m in modes), key=_ORDER.__getitem__)

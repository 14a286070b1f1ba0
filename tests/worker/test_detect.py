"""Tracking-guided detection on real frames with the real MTCNN: when whole-frame searches run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from worker.detect import MtcnnDetector, TrackingGuidedDetector
from worker.gallery import Gallery
from worker.settings import DetectSettings
from worker.types import Frame

pytestmark = pytest.mark.slow

FULL_EVERY = 4
MERGE_AFTER = 2


@pytest.fixture(scope="module")
def base() -> MtcnnDetector:
    return MtcnnDetector(DetectSettings(), "cpu")


@pytest.fixture
def detector(base: MtcnnDetector) -> Iterator[TrackingGuidedDetector]:
    det = TrackingGuidedDetector(base, FULL_EVERY, merge_after=MERGE_AFTER)
    yield det
    det.close()


def run(det: TrackingGuidedDetector, images: list[np.ndarray]) -> tuple[list[int], list[int]]:
    """(frames on which a whole-frame search started, faces found per frame)."""
    started, counts = [], []
    for i, image in enumerate(images):
        before = det.full_searches
        found = det.detect([Frame("cam", i, i * 0.5, datetime.now(UTC), time.monotonic(), image)])
        if det.full_searches > before:
            started.append(i)
        counts.append(len(found[0].boxes))
    return started, counts


def hide_first_tile(gallery: Gallery) -> np.ndarray:
    tile = gallery.tiles[0]
    hidden = gallery.image.copy()
    hidden[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w] = 0
    return hidden


def test_losing_a_stably_followed_face_searches_eagerly(
    detector: TrackingGuidedDetector, gallery: Gallery
) -> None:
    stable = detector.stable_after
    assert stable == 2 * FULL_EVERY
    shown = [gallery.image] * (stable + 1)  # the face is followed `stable` frames after frame 0
    started, counts = run(detector, shown + [hide_first_tile(gallery)] * 6)
    lost_at = stable + 1
    regular = list(range(0, lost_at, FULL_EVERY))  # 0, 4, 8: the search of frame 8 is in flight
    # then one at every chance: each as soon as the previous one is merged
    eager = list(range(regular[-1] + MERGE_AFTER, len(counts), MERGE_AFTER))
    assert started == regular + eager
    assert counts[:lost_at] == [len(gallery.tiles)] * lost_at
    assert counts[lost_at:] == [len(gallery.tiles) - 1] * 6


def test_a_face_lost_soon_after_it_was_found_waits_for_the_regular_search(
    detector: TrackingGuidedDetector, gallery: Gallery
) -> None:
    hidden = hide_first_tile(gallery)
    images = [gallery.image] * 2 + [hidden] * 2 + [gallery.image] * 7
    started, counts = run(detector, images)
    assert started == list(range(0, len(images), FULL_EVERY))  # no extra search: 0, 4, 8
    n = len(gallery.tiles)
    # lost on frame 2; found again by the search started on frame 4, merged on frame 6
    assert counts == [n, n, n - 1, n - 1, n - 1, n - 1] + [n] * 5

"""The shared pipeline on real frames: empty frames, resolution changes, occlusion, privacy."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract import CameraAssignment, FrameMessage, PrivacyMode
from worker.app import build_pipeline
from worker.gallery import Gallery
from worker.metrics import Metrics
from worker.pipeline import CameraContext, FramePipeline
from worker.publish import CallbackPublisher
from worker.settings import WorkerSettings
from worker.types import Frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline_and_sink(model_path: Path) -> tuple[FramePipeline, list[FrameMessage]]:
    sink: list[FrameMessage] = []
    settings = WorkerSettings(
        redis_url=None,
        metrics_port=None,
        model_path=model_path,
        device="cpu",
        worker_id="t",
        cameras_from_redis=False,
        cameras=[CameraAssignment(camera_id="x", url="0")],
    )
    return build_pipeline(settings, CallbackPublisher(sink.append), Metrics()), sink


def frame(cam: str, i: int, image: np.ndarray) -> Frame:
    return Frame(cam, i, i * 0.5, datetime.now(UTC), time.monotonic(), image)


def test_zero_face_frames(pipeline_and_sink) -> None:
    pipeline, _ = pipeline_and_sink
    pipeline.add_camera(CameraContext("empty"))
    black = np.zeros((360, 640, 3), np.uint8)
    messages = [pipeline.process([frame("empty", i, black)])[0] for i in range(3)]
    for m in messages:
        assert m.faces == [] and m.aggregate.face_count == 0 and m.aggregate.mean is None


def test_occluded_face_keeps_its_track(pipeline_and_sink, gallery: Gallery) -> None:
    pipeline, _ = pipeline_and_sink
    pipeline.add_camera(CameraContext("occ"))
    tile = gallery.tiles[0]
    hidden = gallery.image.copy()
    hidden[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w] = 0
    sequence = [gallery.image] * 2 + [hidden] * 2 + [gallery.image] * 5
    messages = [pipeline.process([frame("occ", i, img)])[0] for i, img in enumerate(sequence)]

    def ids_in_tile(m: FrameMessage) -> list[int]:
        return [
            f.track_id
            for f in m.faces
            if tile.x <= (f.box[0] + f.box[2]) / 2 < tile.x + tile.w
            and tile.y <= (f.box[1] + f.box[3]) / 2 < tile.y + tile.h
        ]

    before = ids_in_tile(messages[0])
    assert len(before) == 1
    assert ids_in_tile(messages[2]) == ids_in_tile(messages[3]) == []
    assert ids_in_tile(messages[-1]) == before  # found again, same id (1 s gap < max age)
    assert messages[-1].aggregate.face_count == messages[0].aggregate.face_count


def test_resolution_change_restarts_detection(pipeline_and_sink, gallery: Gallery) -> None:
    pipeline, _ = pipeline_and_sink
    pipeline.add_camera(CameraContext("res"))
    big = gallery.image
    small = cv2.resize(big, (big.shape[1] * 3 // 4, big.shape[0] * 3 // 4))
    m1 = pipeline.process([frame("res", 0, big)])[0]
    m2 = pipeline.process([frame("res", 1, small)])[0]
    assert m1.aggregate.face_count == m2.aggregate.face_count == len(gallery.tiles)
    assert all(f.box[2] <= small.shape[1] + 1 and f.box[3] <= small.shape[0] + 1 for f in m2.faces)


def test_aggregate_only_privacy_publishes_no_faces(pipeline_and_sink, gallery: Gallery) -> None:
    pipeline, _ = pipeline_and_sink
    pipeline.add_camera(CameraContext("agg", "s1", PrivacyMode.AGGREGATE_ONLY))
    m = pipeline.process([frame("agg", 0, gallery.image)])[0]
    assert m.faces == [] and m.aggregate.face_count == len(gallery.tiles)
    assert m.aggregate.mean is not None and m.session_id == "s1"

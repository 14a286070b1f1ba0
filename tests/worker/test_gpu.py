"""On a CUDA machine: MTCNN on the GPU and ONNX Runtime's CUDA provider (skipped without CUDA)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract import CameraAssignment, FrameMessage
from worker.app import build_pipeline
from worker.gallery import Gallery
from worker.metrics import Metrics
from worker.pipeline import CameraContext
from worker.publish import CallbackPublisher
from worker.settings import WorkerSettings
from worker.types import Frame

pytestmark = pytest.mark.gpu


def test_pipeline_on_cuda(model_path: Path, gallery: Gallery) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu not installed (pip install '.[gpu]')")
    sink: list[FrameMessage] = []
    settings = WorkerSettings(
        redis_url=None,
        cameras_from_redis=False,
        metrics_port=None,
        model_path=model_path,
        device="cuda",
        cameras=[CameraAssignment(camera_id="g", url="0")],
    )
    pipeline = build_pipeline(settings, CallbackPublisher(sink.append), Metrics())
    assert pipeline.classifier.providers[0] == "CUDAExecutionProvider"
    pipeline.add_camera(CameraContext("g"))
    for i in range(3):
        pipeline.process(
            [Frame("g", i, i * 0.5, datetime.now(UTC), time.monotonic(), gallery.image)]
        )
    assert [m.aggregate.face_count for m in sink] == [len(gallery.tiles)] * 3

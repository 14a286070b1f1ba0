"""``python -m worker.bench [--quick]``: the worker's speed on a 30-face gallery (prints JSON).

Frame: 1920x1080, 6x5 tiles of 320x216 real webcam frames from the shared data (30 faces,
about 28-80 px), drifting 2 px per tick. Measured in one run:

* throughput: frames pushed through the real staged pipeline (tracking-guided MTCNN, one ONNX
  batch per frame, tracking, smoothing, publishing to an in-process sink) as fast as it takes
  them -> ``frames_per_s``, ``faces_per_s``, ``faces_found_per_frame``;
* latency: frames offered at the live default of 2 per second with latest-frame semantics ->
  ``latency_p50_s`` / ``latency_p95_s`` (capture -> publish);
* baseline: a naive pipeline (full-resolution MTCNN on every frame, the model run one face
  at a time, no overlap) -> ``baseline_faces_per_s`` and ``speedup``.

The naive baseline runs the exported ONNX model one face at a time (the worker may not import
the PyTorch model code in models/, so "eager PyTorch" is not available to it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from contract import CameraAssignment, FrameMessage
from worker.app import build_pipeline
from worker.detect import MtcnnDetector, pick_device
from worker.errors import WorkerError
from worker.gallery import bench_gallery
from worker.infer import OnnxClassifier
from worker.metrics import Metrics
from worker.pipeline import CameraContext, FramePipeline, StagedRunner
from worker.publish import CallbackPublisher
from worker.settings import DEFAULT_MODEL, ROOT, DetectSettings, WorkerSettings
from worker.types import Frame

logger = logging.getLogger("worker.bench")
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def frame_at(image: np.ndarray, i: int, camera: str = "bench") -> Frame:
    """Tick ``i`` of the drifting gallery."""
    return Frame(
        camera, i, i * 0.5, datetime.now(UTC), time.monotonic(), np.roll(image, 2 * i, axis=1)
    )


def run_throughput(pipeline: FramePipeline, image: np.ndarray, ticks: int, start: int) -> float:
    """Seconds to push ``ticks`` frames through the staged pipeline, none dropped."""
    runner = StagedRunner(pipeline)
    began = time.perf_counter()
    for i in range(start, start + ticks):
        runner.submit([frame_at(image, i)], block=True)
    runner.close()
    return time.perf_counter() - began


def run_latency(pipeline: FramePipeline, image: np.ndarray, ticks: int, start: int) -> list[float]:
    """Capture -> publish latencies when frames arrive at 2 per second (live default)."""
    runner = StagedRunner(pipeline)
    first = len(pipeline.latencies)
    began = time.monotonic()
    for k, i in enumerate(range(start, start + ticks)):
        time.sleep(max(0.0, began + 0.5 * k - time.monotonic()))
        runner.submit([frame_at(image, i)])
    runner.close()
    return pipeline.latencies[first:]


def run_baseline(settings: WorkerSettings, image: np.ndarray, frames: int) -> float:
    """Naive faces/s: full-resolution detection, one face at a time, nothing overlapped."""
    detector = MtcnnDetector(DetectSettings(long_side=max(image.shape[:2])), settings.device)
    clf = OnnxClassifier(settings.model_path, settings.device, threads=0, max_batch=1)
    detector.search([image])  # warm-up
    faces, began = 0, time.perf_counter()
    for i in range(frames):
        frame = np.roll(image, 2 * i, axis=1)
        boxes = detector.search([frame])[0]
        for b in boxes:
            clf.classify(clf.crops(frame, [b]))
        faces += len(boxes)
    return faces / (time.perf_counter() - began)


def bench(args: argparse.Namespace) -> dict[str, object]:
    """Run the three measurements; returns the JSON object."""
    gallery = bench_gallery(args.data_dir, args.faces)
    settings = _settings(args)
    messages: list[FrameMessage] = []
    pipeline = build_pipeline(settings, CallbackPublisher(messages.append), Metrics())
    pipeline.add_camera(CameraContext("bench"))
    image = gallery.image
    run_throughput(pipeline, image, 2, 0)  # warm-up (first full search, ORT allocations)
    warm = len(messages)
    elapsed = run_throughput(pipeline, image, args.ticks, 2)
    analysed = messages[warm:]
    faces = sum(m.aggregate.face_count for m in analysed)
    latencies = run_latency(pipeline, image, args.latency_ticks, 2 + args.ticks)
    torch.set_num_threads(max(1, os.cpu_count() or 1))  # the naive pipeline gets every core
    baseline = run_baseline(settings, image, args.baseline_frames)
    faces_per_s = faces / elapsed
    return {
        "frames_per_s": round(len(analysed) / elapsed, 3),
        "faces_per_s": round(faces_per_s, 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(pick_device(settings.device)),
        "providers": pipeline.classifier.providers,
        "baseline_faces_per_s": round(baseline, 2),
        "speedup": round(faces_per_s / baseline, 2) if baseline else None,
        "faces_expected": len(gallery.tiles),
        "faces_found_per_frame": round(faces / len(analysed), 2) if analysed else 0.0,
    }


def _settings(args: argparse.Namespace) -> WorkerSettings:
    return WorkerSettings(
        redis_url=None,
        cameras_from_redis=False,
        metrics_port=None,
        model_path=args.model,
        device=args.device,
        worker_id="bench",
        cameras=[CameraAssignment(camera_id="bench", url="bench")],
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: prints one JSON object on stdout."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m worker.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer ticks: finishes within 60 s")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--faces", type=int, default=30)
    p.add_argument("--ticks", type=int, default=None, help="throughput frames")
    p.add_argument("--latency-ticks", type=int, default=None, help="frames offered at 2 fps")
    p.add_argument("--baseline-frames", type=int, default=None, help="naive pipeline frames")
    args = p.parse_args(argv)
    args.ticks = args.ticks or (8 if args.quick else 40)
    args.latency_ticks = args.latency_ticks or (6 if args.quick else 20)
    args.baseline_frames = args.baseline_frames or (1 if args.quick else 4)
    if not (args.data_dir / "frames" / "frames.csv").is_file():
        sys.stderr.write(f"error: shared frames not found under {args.data_dir} (--data-dir)\n")
        return 2
    try:
        result = bench(args)
    except WorkerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

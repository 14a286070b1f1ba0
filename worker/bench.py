"""``python -m worker.bench [--quick]``: the worker's speed on a 30-face gallery (prints JSON).

Frame: 1920x1080, 6x5 tiles of 320x216 real webcam frames from the shared data (30 faces,
about 28-80 px), drifting 2 px per tick. Measured in one run:

* throughput: frames pushed through the real staged pipeline (tracking-guided MTCNN, one ONNX
  batch per frame, tracking, smoothing, publishing to an in-process sink) as fast as it takes
  them -> ``frames_per_s``, ``faces_per_s``, ``faces_found_per_frame``, and
  ``full_searches_per_frame`` (whole-frame MTCNN searches started per analysed frame: the
  detector's main cost, nominally 1 per ``full_every`` = 4 frames);
* latency: frames offered at the live default of 2 per second with latest-frame semantics ->
  ``latency_p50_s`` / ``latency_p95_s`` (capture -> publish);
* baseline: a naive pipeline (full-resolution MTCNN on every frame, the model run one face
  at a time, no overlap) -> ``baseline_faces_per_s`` and ``speedup``.

Throughput and baseline are measured in alternating rounds (``--rounds``, 4 by default: 10
pipeline ticks, then 2 naive frames, and again), so that other processes on a shared machine
slow both alike instead of whichever happened to run while they were busy.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from contract import CameraAssignment, FrameMessage
from worker.app import build_pipeline, stage_threads
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
    """Seconds to push ``ticks`` frames through the staged pipeline, none dropped, and to
    finish the background search still running (so none runs on into the next measurement)."""
    runner = StagedRunner(pipeline)
    began = time.perf_counter()
    for i in range(start, start + ticks):
        runner.submit([frame_at(image, i)], block=True)
    runner.close()
    settle = getattr(pipeline.detector, "settle", None)
    if settle is not None:
        settle()
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


class NaivePipeline:
    """The baseline: full-resolution detection, one face at a time, nothing overlapped."""

    def __init__(self, settings: WorkerSettings, image: np.ndarray) -> None:
        side = max(image.shape[:2])
        self.detector = MtcnnDetector(DetectSettings(long_side=side), settings.device)
        self.clf = OnnxClassifier(settings.model_path, settings.device, threads=0, max_batch=1)
        self.image = image
        self.detector.search([image])  # warm-up

    def run(self, start: int, frames: int) -> tuple[int, float]:
        """(faces, seconds) for frames ``start .. start + frames - 1`` of the drifting gallery."""
        torch.set_num_threads(max(1, os.cpu_count() or 1))  # the naive pipeline gets every core
        faces, began = 0, time.perf_counter()
        for i in range(start, start + frames):
            frame = np.roll(self.image, 2 * i, axis=1)
            boxes = self.detector.search([frame])[0]
            for b in boxes:
                self.clf.classify(self.clf.crops(frame, [b]))
            faces += len(boxes)
        return faces, time.perf_counter() - began


@dataclass
class _Totals:
    faces: int = 0
    frames: int = 0
    seconds: float = 0.0
    searches: int = 0


def run_rounds(
    pipeline: FramePipeline,
    naive: NaivePipeline,
    messages: list[FrameMessage],
    args: argparse.Namespace,
    threads: int,
) -> tuple[_Totals, _Totals]:
    """Throughput of the pipeline and of the naive baseline, measured in alternating rounds
    (so that load from other processes on a shared machine hits both alike); returns
    (pipeline totals, baseline totals). Each round restarts the staged runner, so the
    pipeline also pays one pipeline fill and drain per round."""
    ours, base = _Totals(), _Totals()
    tick, naive_frame = 2, 0
    for r in range(args.rounds):
        ticks = _share(args.ticks, args.rounds, r)
        torch.set_num_threads(threads)
        first, searches = len(messages), _full_searches(pipeline)
        ours.seconds += run_throughput(pipeline, naive.image, ticks, tick)
        ours.searches += _full_searches(pipeline) - searches
        ours.frames += len(messages) - first
        ours.faces += sum(m.aggregate.face_count for m in messages[first:])
        tick += ticks
        frames = _share(args.baseline_frames, args.rounds, r)
        faces, seconds = naive.run(naive_frame, frames)
        base.faces, base.seconds = base.faces + faces, base.seconds + seconds
        base.frames += frames
        naive_frame += frames
    torch.set_num_threads(threads)
    return ours, base


def _share(total: int, parts: int, k: int) -> int:
    """Part ``k`` of ``total`` split into ``parts`` near-equal whole parts."""
    return total // parts + (1 if k < total % parts else 0)


def bench(args: argparse.Namespace) -> dict[str, object]:
    """Run the measurements; returns the JSON object."""
    gallery = bench_gallery(args.data_dir, args.faces)
    settings = _settings(args)
    messages: list[FrameMessage] = []
    pipeline = build_pipeline(settings, CallbackPublisher(messages.append), Metrics())
    pipeline.add_camera(CameraContext("bench"))
    image = gallery.image
    run_throughput(pipeline, image, 2, 0)  # warm-up (first full search, ORT allocations)
    naive = NaivePipeline(settings, image)
    ours, base = run_rounds(pipeline, naive, messages, args, stage_threads(settings))
    latencies = run_latency(pipeline, image, args.latency_ticks, 2 + args.ticks)
    faces_per_s = ours.faces / ours.seconds
    baseline = base.faces / base.seconds
    return {
        "frames_per_s": round(ours.frames / ours.seconds, 3),
        "faces_per_s": round(faces_per_s, 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(pick_device(settings.device)),
        "providers": pipeline.classifier.providers,
        "baseline_faces_per_s": round(baseline, 2),
        "speedup": round(faces_per_s / baseline, 2) if baseline else None,
        "faces_expected": len(gallery.tiles),
        "faces_found_per_frame": round(ours.faces / ours.frames, 2) if ours.frames else 0.0,
        "full_searches_per_frame": round(ours.searches / ours.frames, 3) if ours.frames else 0.0,
    }


def _full_searches(pipeline: FramePipeline) -> int:
    """Whole-frame searches the detector has started so far (0 for a detector without any)."""
    return int(getattr(pipeline.detector, "full_searches", 0))


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
    p.add_argument("--rounds", type=int, default=None, help="alternating pipeline/baseline rounds")
    args = p.parse_args(argv)
    args.ticks = args.ticks or (8 if args.quick else 40)
    args.latency_ticks = args.latency_ticks or (6 if args.quick else 20)
    args.baseline_frames = args.baseline_frames or (1 if args.quick else 8)
    args.rounds = max(1, min(args.rounds or (1 if args.quick else 4), args.ticks))
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

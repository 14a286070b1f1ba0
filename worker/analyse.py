"""``python -m worker.analyse``: run the live worker's pipeline over a recorded lesson.

    python -m worker.analyse --source PATH_OR_URL --out SCORES.jsonl [--fps 2]
        [--seat-map SEATS.json] [--model PATH] [--device auto|cpu|cuda] [--seconds N]
        [--publish --session ID [--start ISO8601] [--redis-url URL]]

Same stages and code path as the live worker (``build_pipeline`` + ``StagedRunner``), but
frames are taken in video time (every ``1/fps`` seconds of the video, none skipped) instead of
wall-clock. Each output line is a ``contract.FrameMessage`` (t, faces with box / track_id /
student / probs / smoothed / det_prob, aggregate). Exit status: 0 done, 1 the video is
truncated or damaged (everything before the damage is written), 2 bad input (missing file,
unreadable video, URL not answering, bad model or seat map).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm  # type: ignore[import-untyped]

from contract import CameraAssignment
from worker.app import build_pipeline
from worker.errors import WorkerError
from worker.metrics import Metrics
from worker.pipeline import CameraContext, FramePipeline, StagedRunner
from worker.publish import FanoutPublisher, JsonlPublisher, Publisher, RedisPublisher
from worker.seats import SeatMap
from worker.settings import DEFAULT_MODEL, WorkerSettings
from worker.stream import VideoTimeReader

logger = logging.getLogger("worker.analyse")


@dataclass(frozen=True)
class Summary:
    """What one analyse run did."""

    frames: int
    faces_per_frame: float
    tracks: int
    seconds: float
    faces_per_s: float
    damaged_at: int | None

    def text(self) -> str:
        """One human line."""
        damage = f", DAMAGED at frame {self.damaged_at}" if self.damaged_at is not None else ""
        return (
            f"analysed {self.frames} frames, {self.faces_per_frame:.1f} faces/frame, "
            f"{self.tracks} tracks, {self.seconds:.1f} s, {self.faces_per_s:.1f} faces/s{damage}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="python -m worker.analyse", description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True, help="video file path or rtsp/http URL")
    p.add_argument("--out", required=True, type=Path, help="JSONL output file")
    p.add_argument("--fps", type=float, default=2.0, help="analysed frames per video second")
    p.add_argument("--seat-map", type=Path, default=None, help="JSON seat code -> polygon")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="exported .onnx model")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seconds", type=float, default=None, help="stop after N video seconds")
    p.add_argument("--camera-id", default="recording")
    p.add_argument("--publish", action="store_true", help="also send messages to Redis")
    p.add_argument("--session", default=None, help="session id for published messages")
    p.add_argument("--start", default=None, help="ISO time of the video start (default: now)")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--open-timeout", type=float, default=10.0, help="seconds to wait for a URL")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.fps <= 0 or args.fps > 30:
        p.error(f"--fps must be in (0, 30], got {args.fps}")
    if args.publish and not args.session:
        p.error("--publish needs --session ID")
    return args


def start_time(value: str | None) -> datetime:
    """--start as an aware UTC datetime."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WorkerError(f"--start {value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def analyse(args: argparse.Namespace) -> Summary:
    """Run the pipeline over the source; raises WorkerError on bad input."""
    seats = SeatMap.load(args.seat_map) if args.seat_map else None
    assignment = CameraAssignment(
        camera_id=args.camera_id, url=args.source, session_id=args.session, fps=args.fps
    )
    settings = WorkerSettings(
        cameras=[assignment],
        redis_url=None,
        cameras_from_redis=False,
        metrics_port=None,
        model_path=args.model,
        device=args.device,
    )
    reader = VideoTimeReader(
        args.camera_id,
        args.source,
        fps=args.fps,
        start=start_time(args.start),
        seconds=args.seconds,
        open_timeout_s=args.open_timeout,
    )
    metrics = Metrics()
    jsonl = JsonlPublisher(args.out)
    publisher: Publisher = jsonl
    if args.publish:
        publisher = FanoutPublisher(jsonl, RedisPublisher(args.redis_url, metrics))
    pipeline = build_pipeline(settings, publisher, metrics)
    pipeline.add_camera(CameraContext(args.camera_id, args.session, assignment.privacy_mode, seats))
    began = time.monotonic()
    try:
        _feed(reader, pipeline, args)
    finally:
        pipeline.close()
        publisher.close()
    elapsed = time.monotonic() - began
    frames, faces, tracks = pipeline.stats(args.camera_id)
    return Summary(
        frames,
        faces / frames if frames else 0.0,
        tracks,
        elapsed,
        faces / elapsed if elapsed > 0 else 0.0,
        reader.damaged_at,
    )


def _feed(reader: VideoTimeReader, pipeline: FramePipeline, args: argparse.Namespace) -> None:
    total_s = reader.frame_count / reader.native_fps if reader.native_fps else None
    if args.seconds is not None:
        total_s = min(total_s, args.seconds) if total_s else args.seconds
    total = int(total_s * args.fps) + 1 if total_s else None
    runner = StagedRunner(pipeline)
    with tqdm(total=total, unit="frame", file=sys.stderr, disable=args.quiet) as bar:
        try:
            for frame in reader:
                runner.submit([frame], block=True)
                bar.update(1)
        finally:
            runner.close()
    if runner.errors:
        raise WorkerError(f"{runner.errors} batches failed during analysis (see the log)")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        summary = analyse(args)
    except WorkerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stderr.write(summary.text() + "\n")
    if summary.damaged_at is not None:
        sys.stderr.write(
            f"error: {args.source} is truncated or damaged at frame {summary.damaged_at}; "
            f"the {summary.frames} frames before it were written to {args.out}\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

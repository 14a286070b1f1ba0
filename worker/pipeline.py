"""The one analysis code path shared by the live worker and ``python -m worker.analyse``.

``FramePipeline`` turns frames into FrameMessages: detect (tracking-guided MTCNN) -> crop and
classify every face of the batch in one model call -> track -> seat map -> EMA -> message.
``StagedRunner`` overlaps the stages in two threads (detection of the next batch while the model
runs on this one); its pending slot holds at most one frame per camera, so a newer frame
replaces an older one (counted) instead of queueing without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from contract import ClassAggregate, FaceScore, FrameMessage, PrivacyMode, Probs
from worker.detect import FaceDetector
from worker.infer import EmotionClassifier
from worker.metrics import Metrics
from worker.publish import Publisher
from worker.seats import SeatMap
from worker.smooth import EmaSmoother
from worker.track import Tracker
from worker.types import Detections, Frame, TrackedFace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraContext:
    """What the pipeline needs to know about a camera (from its CameraAssignment)."""

    camera_id: str
    session_id: str | None = None
    privacy_mode: PrivacyMode = PrivacyMode.PER_STUDENT
    seats: SeatMap | None = None


@dataclass
class _CameraAnalysis:
    ctx: CameraContext
    tracker: Tracker
    smoother: EmaSmoother
    seq: int = 0
    shape: tuple[int, ...] | None = None
    faces_total: int = 0
    track_ids: set[int] = field(default_factory=set)


def _probs(values: np.ndarray) -> Probs:
    return Probs.from_sequence([min(1.0, max(0.0, float(v))) for v in values])


class FramePipeline:
    """Stateless stages wired with per-camera state (tracker, smoother, sequence number)."""

    def __init__(
        self,
        *,
        worker_id: str,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        make_tracker: Callable[[], Tracker],
        smoothing_tau_s: float,
        publisher: Publisher,
        metrics: Metrics,
    ) -> None:
        self.worker_id = worker_id
        self.detector, self.classifier = detector, classifier
        self.make_tracker, self.smoothing_tau_s = make_tracker, smoothing_tau_s
        self.publisher, self.metrics = publisher, metrics
        self._cameras: dict[str, _CameraAnalysis] = {}
        self._lock = threading.Lock()
        self.latencies: list[float] = []

    def add_camera(self, ctx: CameraContext) -> None:
        """Start (or restart) analysing a camera with fresh tracks and smoothing."""
        with self._lock:
            self._cameras[ctx.camera_id] = _CameraAnalysis(
                ctx, self.make_tracker(), EmaSmoother(self.smoothing_tau_s)
            )
        forget = getattr(self.detector, "forget", None)
        if forget is not None:
            forget(ctx.camera_id)

    def remove_camera(self, camera_id: str) -> None:
        """Stop analysing a camera; frames of it still in flight are discarded."""
        with self._lock:
            self._cameras.pop(camera_id, None)

    def close(self) -> None:
        """Release stage resources (the detector's background search thread)."""
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()

    def stats(self, camera_id: str) -> tuple[int, int, int]:
        """(messages, faces, distinct tracks) so far for a camera."""
        with self._lock:
            cam = self._cameras.get(camera_id)
            return (cam.seq, cam.faces_total, len(cam.track_ids)) if cam else (0, 0, 0)

    # -- stage 1 ---------------------------------------------------------------------------
    def detect(self, frames: list[Frame]) -> list[Detections]:
        """Detection for a batch of frames of different cameras."""
        start = time.perf_counter()
        out = self.detector.detect(frames)
        self.metrics.detect_seconds.observe(time.perf_counter() - start)
        return out

    # -- stage 2 ---------------------------------------------------------------------------
    def analyse(self, batch: list[Detections]) -> list[FrameMessage]:
        """Classify every face of the batch in one model call, then track, smooth, publish."""
        batch = [d for d in batch if d.frame.camera_id in self._cameras]
        inputs = [self.classifier.crops(d.frame.image, list(d.boxes)) for d in batch]
        start = time.perf_counter()
        probs = self.classifier.classify(np.concatenate(inputs)) if inputs else np.zeros((0, 6))
        if inputs:
            self.metrics.inference_seconds.observe(time.perf_counter() - start)
        messages: list[FrameMessage] = []
        offset = 0
        for det in batch:
            n = len(det.boxes)
            message = self._message(det, probs[offset : offset + n])
            offset += n
            if message is not None:
                self.metrics.frames_analysed.labels(camera=det.frame.camera_id).inc()
                self.metrics.faces_analysed.labels(camera=det.frame.camera_id).inc(n)
                self.publisher.publish(message)
                latency = time.monotonic() - det.frame.captured
                self.latencies.append(latency)
                self.metrics.latency_seconds.observe(latency)
                messages.append(message)
        return messages

    def process(self, frames: list[Frame]) -> list[FrameMessage]:
        """Both stages, synchronously."""
        return self.analyse(self.detect(frames))

    def _message(self, det: Detections, probs: np.ndarray) -> FrameMessage | None:
        frame = det.frame
        with self._lock:
            cam = self._cameras.get(frame.camera_id)
        if cam is None:
            return None
        if cam.shape is not None and cam.shape != frame.image.shape:
            logger.warning(
                "camera %s changed resolution %s -> %s; tracks restart",
                frame.camera_id,
                cam.shape[:2],
                frame.image.shape[:2],
            )
            cam.tracker.reset()
            cam.smoother.reset()
        cam.shape = frame.image.shape
        tracked: list[TrackedFace] = cam.tracker.update(list(det.boxes), frame.t)
        if cam.ctx.seats is not None:
            tracked = cam.ctx.seats.assign(tracked)
        faces: list[FaceScore] = []
        smoothed_all: list[np.ndarray] = []
        for face, p in zip(tracked, probs, strict=True):
            key = face.student if face.student is not None else f"track:{face.track_id}"
            smoothed = cam.smoother.update(key, p.astype(np.float64), frame.t)
            smoothed_all.append(smoothed)
            faces.append(
                FaceScore(
                    track_id=face.track_id,
                    student=face.student,
                    box=face.box.as_tuple(),
                    probs=_probs(p),
                    smoothed=_probs(smoothed),
                    det_prob=min(1.0, max(0.0, face.box.prob)),
                )
            )
            cam.track_ids.add(face.track_id)
        mean = _probs(np.mean(smoothed_all, axis=0)) if smoothed_all else None
        aggregate = ClassAggregate(face_count=len(faces), mean=mean)
        if cam.ctx.privacy_mode == PrivacyMode.AGGREGATE_ONLY:
            faces = []  # per-student data never leaves the worker in this mode
        message = FrameMessage(
            camera_id=frame.camera_id,
            session_id=cam.ctx.session_id,
            worker_id=self.worker_id,
            seq=cam.seq,
            ts=frame.ts,
            t=frame.t,
            faces=faces,
            aggregate=aggregate,
        )
        cam.seq += 1
        cam.faces_total += aggregate.face_count
        return message


class StagedRunner:
    """Overlaps detection (thread 1) with classification + publishing (thread 2).

    ``submit(frames, block=False)`` (live) merges the frames into the pending slot, replacing
    any older frame of the same camera (counted in ``replaced`` and the dropped-frames metric);
    ``block=True`` (analyse) waits for room so that no frame is skipped.
    """

    def __init__(self, pipeline: FramePipeline) -> None:
        self.pipeline = pipeline
        self._pending: dict[str, Frame] = {}
        self._cond = threading.Condition()
        self._detected: queue.Queue[list[Detections] | None] = queue.Queue(maxsize=1)
        self._closing = False
        self._busy = 0
        self.replaced = 0
        self.errors = 0
        self._t1 = threading.Thread(target=self._detect_loop, name="stage-detect", daemon=True)
        self._t2 = threading.Thread(target=self._analyse_loop, name="stage-analyse", daemon=True)
        self._t1.start()
        self._t2.start()

    def submit(self, frames: list[Frame], *, block: bool = False) -> None:
        """Hand frames to the detection stage."""
        with self._cond:
            if block:
                while self._pending and not self._closing:
                    self._cond.wait()
            for frame in frames:
                old = self._pending.get(frame.camera_id)
                if old is not None:
                    self.replaced += 1
                    self.pipeline.metrics.frames_dropped.labels(camera=frame.camera_id).inc()
                self._pending[frame.camera_id] = frame
            self._cond.notify_all()

    def idle(self) -> bool:
        """True when nothing is pending or in flight."""
        with self._cond:
            return not self._pending and self._busy == 0

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every submitted frame is published (True) or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish the batches in flight, then stop both threads."""
        self.drain(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._t1.join(timeout_s)
        self._t2.join(timeout_s)

    def _detect_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing and not self._pending:
                    self._detected.put(None)
                    return
                frames = list(self._pending.values())
                self._pending.clear()
                self._busy += 1
                self._cond.notify_all()
            try:
                detections = self.pipeline.detect(frames)
            except Exception:
                logger.exception("detection failed for a batch of %d frames", len(frames))
                self.errors += 1
                detections = []
            self._detected.put(detections)

    def _analyse_loop(self) -> None:
        while True:
            batch = self._detected.get()
            if batch is None:
                return
            try:
                self.pipeline.analyse(batch)
            except Exception:
                logger.exception("analysis failed for a batch of %d frames", len(batch))
                self.errors += 1
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

"""Scheduler: analyse each camera at its rate; one batch per tick across cameras.

It owns the camera sources of the cameras this worker holds (from the Coordinator), takes the
latest frame of every camera that is due, and hands them to the staged pipeline as one batch.
A camera with no new frame (broken, reconnecting) is simply absent from the batch, so it never
slows the others. Every ``coordination_period_s`` it re-syncs leases, restarts failed streams,
writes camera status and updates the source metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from contract import CameraAssignment, PrivacyMode
from worker.coordination import Coordinator
from worker.errors import ConfigError
from worker.metrics import Metrics
from worker.pipeline import CameraContext, FramePipeline, StagedRunner
from worker.seats import SeatMap
from worker.settings import WorkerSettings
from worker.stream import Backoff, CameraSource, SourceState
from worker.types import CameraState, Frame

logger = logging.getLogger(__name__)


@dataclass
class _Camera:
    assignment: CameraAssignment
    source: CameraSource
    next_due: float
    failed_since: float | None = None
    seen: dict[str, int] = field(default_factory=lambda: {"read": 0, "dropped": 0, "reconnects": 0})


def context_of(assignment: CameraAssignment) -> CameraContext:
    """The pipeline's view of an assignment (seat map validated here)."""
    try:
        seats = SeatMap(assignment.seats) if assignment.seats else None
    except ConfigError as exc:
        raise ConfigError(f"camera {assignment.camera_id}: {exc}") from exc
    return CameraContext(
        assignment.camera_id, assignment.session_id, assignment.privacy_mode, seats
    )


class Scheduler:
    """The live loop of one worker."""

    def __init__(
        self,
        settings: WorkerSettings,
        coordinator: Coordinator,
        pipeline: FramePipeline,
        runner: StagedRunner,
        metrics: Metrics,
    ) -> None:
        self.settings, self.coordinator = settings, coordinator
        self.pipeline, self.runner, self.metrics = pipeline, runner, metrics
        self.cameras: dict[str, _Camera] = {}
        self.ticks = 0

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        next_sync = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_sync:
                self._sync(now)
                next_sync = now + self.settings.coordination_period_s
            frames = self._due_frames(now)
            if frames:
                self.runner.submit(frames)
                self.ticks += 1
            wake = min([c.next_due for c in self.cameras.values()] + [next_sync])
            stop.wait(max(0.002, wake - time.monotonic()))

    def close(self) -> None:
        """Stop every source and say so in the camera status (the caller drains the pipeline
        and releases the leases)."""
        states = []
        for cam_id in list(self.cameras):
            source = self.cameras[cam_id].source
            self._drop(cam_id)
            states.append(source.snapshot())
        self.coordinator.write_status(states)

    def _due_frames(self, now: float) -> list[Frame]:
        frames: list[Frame] = []
        for cam in self.cameras.values():
            cam.source.check_watchdog(now)
            if now < cam.next_due:
                continue
            period = 1.0 / cam.assignment.fps
            cam.next_due += period
            if cam.next_due < now:  # fell behind (slow tick): restart the rhythm from now
                cam.next_due = now + period
            frame = cam.source.take()
            if frame is not None:
                frames.append(frame)
        return frames

    def _sync(self, now: float) -> None:
        wanted = self.coordinator.sync()
        wanted = {k: v for k, v in wanted.items() if v.privacy_mode != PrivacyMode.OFF}
        for cam_id in list(self.cameras):
            if cam_id not in wanted or wanted[cam_id] != self.cameras[cam_id].assignment:
                self._drop(cam_id)
        for cam_id, assignment in wanted.items():
            if cam_id not in self.cameras:
                self._add(assignment, now)
        self._restart_failed(now)
        self.metrics.cameras_held.set(len(self.cameras))
        states = [c.source.snapshot() for c in self.cameras.values()]
        self._update_metrics(states)
        self.coordinator.write_status(states)

    def _add(self, assignment: CameraAssignment, now: float) -> None:
        try:
            ctx = context_of(assignment)
        except ConfigError as exc:
            logger.error("%s", exc)
            self.coordinator.write_status(
                [CameraState(assignment.camera_id, "failed", 0, 0, 0, str(exc))]
            )
            return
        s = self.settings
        source = CameraSource(
            assignment.camera_id,
            assignment.url,
            loop_files=s.loop_files,
            stale_after_s=s.stale_after_s,
            open_timeout_s=s.open_timeout_s,
            backoff=Backoff(s.backoff_initial_s, s.backoff_max_s),
        )
        self.pipeline.add_camera(ctx)
        source.start()
        self.cameras[assignment.camera_id] = _Camera(assignment, source, now)
        logger.info(
            "analysing camera %s (%s) at %.2f fps",
            assignment.camera_id,
            assignment.url,
            assignment.fps,
        )

    def _drop(self, cam_id: str) -> None:
        cam = self.cameras.pop(cam_id)
        cam.source.stop()
        self.pipeline.remove_camera(cam_id)
        self.metrics.set_state(cam_id, SourceState.STOPPED.value)
        logger.info("stopped camera %s", cam_id)

    def _restart_failed(self, now: float) -> None:
        """A failed stream is retried after the backoff cap (a missing file stays failed)."""
        for cam_id, cam in list(self.cameras.items()):
            if cam.source.state != SourceState.FAILED or cam.source.is_file:
                cam.failed_since = None
                continue
            if cam.failed_since is None:
                cam.failed_since = now
            elif now - cam.failed_since >= self.settings.backoff_max_s:
                logger.info("restarting failed camera %s", cam_id)
                assignment = cam.assignment
                self._drop(cam_id)
                self._add(assignment, now)

    def _update_metrics(self, states: list[CameraState]) -> None:
        for st in states:
            cam = self.cameras[st.camera_id]
            m = self.metrics
            for key, value, counter in (
                ("read", st.frames_read, m.frames_read),
                ("dropped", st.frames_dropped, m.frames_dropped),
                ("reconnects", st.reconnects, m.reconnects),
            ):
                if value > cam.seen[key]:
                    counter.labels(camera=st.camera_id).inc(value - cam.seen[key])
                cam.seen[key] = value
            m.set_state(st.camera_id, st.state)

"""A live camera as an explicit state machine with one reconnect routine and a watchdog.

States: connecting -> running -> (reconnecting -> running)* -> ended | failed | stopped.
A reader thread decodes frames and keeps only the latest one (a frame replaced before anyone
took it is counted as dropped). Files (and progressive MP4 over HTTP) are read at their native
rate; files optionally loop. When no frame arrives for ``stale_after_s`` the watchdog abandons
the capture and reconnects, even if the old read is stuck inside FFmpeg.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np

from worker.errors import SourceError
from worker.stream.open import OpenedCapture, is_file_source, open_capture
from worker.types import CameraState, Frame

logger = logging.getLogger(__name__)


class SourceState(StrEnum):
    """Where a camera is in its life."""

    CONNECTING = "connecting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with a cap; ``max_attempts`` None = retry forever."""

    initial_s: float = 0.5
    max_s: float = 10.0
    factor: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based)."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))


class CameraSource:
    """Latest-frame reader for one camera URL."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        loop_files: bool = True,
        stale_after_s: float = 5.0,
        open_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.camera_id, self.url = camera_id, url
        self.loop_files = loop_files
        self.is_file = is_file_source(url)
        self.stale_after_s, self.open_timeout_s = stale_after_s, open_timeout_s
        self.backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = SourceState.CONNECTING
        self._latest: Frame | None = None
        self._taken_index = -1
        self._generation = 0
        self._last_frame_mono = time.monotonic()
        self._index = 0  # frames decoded in this source run (all generations)
        self._t0 = time.monotonic()
        self.reconnects = 0
        self.frames_read = 0
        self.frames_dropped = 0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    # -- public API --------------------------------------------------------------------------
    @property
    def state(self) -> SourceState:
        """Current state."""
        with self._lock:
            return self._state

    def start(self) -> None:
        """Start reading in a background thread."""
        self._spawn()

    def stop(self) -> None:
        """Stop reading (the reader releases its capture)."""
        self._stop.set()
        self._set_state(SourceState.STOPPED)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def take(self) -> Frame | None:
        """The newest frame not taken before, or None."""
        with self._lock:
            frame = self._latest
            if frame is None or frame.index <= self._taken_index:
                return None
            self._taken_index = frame.index
            return frame

    def snapshot(self) -> CameraState:
        """Counters and state for status and metrics."""
        with self._lock:
            return CameraState(
                self.camera_id,
                self._state.value,
                self.reconnects,
                self.frames_read,
                self.frames_dropped,
                self.last_error,
            )

    def check_watchdog(self, now: float | None = None) -> bool:
        """Reconnect when running but silent for ``stale_after_s``; True if it fired."""
        now = time.monotonic() if now is None else now
        with self._lock:
            silent = now - self._last_frame_mono
            if self._state != SourceState.RUNNING or silent <= self.stale_after_s:
                return False
            self._state = SourceState.RECONNECTING
            self.reconnects += 1
            self.last_error = f"no frame for {silent:.1f} s"
        logger.warning("camera %s: no frame for %.1f s; reconnecting", self.camera_id, silent)
        self._spawn()
        return True

    # -- reader ------------------------------------------------------------------------------
    def _spawn(self) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
            self._last_frame_mono = time.monotonic()
        self._thread = threading.Thread(
            target=self._reader, args=(gen,), name=f"source-{self.camera_id}-{gen}", daemon=True
        )
        self._thread.start()

    def _current(self, gen: int) -> bool:
        return not self._stop.is_set() and gen == self._generation

    def _set_state(self, state: SourceState, gen: int | None = None) -> None:
        with self._lock:
            if gen is not None and gen != self._generation:
                return
            if self._state in (SourceState.STOPPED,) and state != SourceState.STOPPED:
                return
            if state != self._state:
                logger.info("camera %s: %s -> %s", self.camera_id, self._state, state)
            self._state = state

    def _reader(self, gen: int) -> None:
        """Thread body: an unexpected error marks the camera failed (the scheduler restarts
        failed streams) instead of dying silently."""
        try:
            self._read_forever(gen)
        except Exception as exc:
            logger.exception("camera %s: reader crashed", self.camera_id)
            self.last_error = f"reader crashed: {exc!r}"
            self._set_state(SourceState.FAILED, gen)

    def _read_forever(self, gen: int) -> None:
        first = True
        while self._current(gen):
            opened = self._connect(
                gen, reconnect=not first and self.state != SourceState.CONNECTING
            )
            first = False
            if opened is None:
                return
            try:
                outcome = self._read_loop(gen, opened)
            finally:
                opened.capture.release()
            if outcome == "ended" and self.is_file and self.loop_files:
                continue
            if outcome == "ended":
                self._set_state(SourceState.ENDED, gen)
                return
            if outcome == "error" and self._current(gen):
                with self._lock:
                    self.reconnects += 1
                self._set_state(SourceState.RECONNECTING, gen)

    def _connect(self, gen: int, *, reconnect: bool) -> OpenedCapture | None:
        """The one reconnect routine: open with exponential backoff until stopped or failed."""
        attempt = 0
        while self._current(gen):
            attempt += 1
            try:
                opened = open_capture(self.url, self.open_timeout_s)
            except SourceError as exc:
                self.last_error = str(exc)
                permanent = self.is_file  # a missing/unreadable file will not heal by waiting
                limit = self.backoff.max_attempts
                if permanent or (limit is not None and attempt >= limit):
                    logger.error("camera %s failed: %s", self.camera_id, exc)
                    self._set_state(SourceState.FAILED, gen)
                    return None
                delay = self.backoff.delay(attempt)
                logger.warning(
                    "camera %s: %s; retry %d in %.1f s", self.camera_id, exc, attempt, delay
                )
                self._set_state(
                    SourceState.RECONNECTING
                    if reconnect or attempt > 1
                    else SourceState.CONNECTING,
                    gen,
                )
                if self._stop.wait(delay):
                    return None
                continue
            self._set_state(SourceState.RUNNING, gen)
            with self._lock:
                self._last_frame_mono = time.monotonic()
            return opened
        return None

    def _read_loop(self, gen: int, opened: OpenedCapture) -> str:
        """Read until the stream ends ('ended'), breaks ('error') or we are superseded."""
        cap, fps = opened.capture, opened.fps
        recorded = fps > 0 and (self.is_file or opened.frame_count > 0)  # e.g. MP4 over HTTP
        start_mono, start_index = time.monotonic(), self._index
        while self._current(gen):
            ok, image = cap.read()
            if not self._current(gen):
                return "superseded"
            if not ok or image is None:
                if self.is_file:
                    return "ended"
                self.last_error = "read failed (stream broke or frame undecodable)"
                logger.warning("camera %s: read failed; reconnecting", self.camera_id)
                return "error"
            if recorded:  # played at its native rate, like a camera would deliver it
                due = start_mono + (self._index - start_index) / fps
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return "stopped"
            self._store(image, fps if recorded else 0.0)
        return "superseded"

    def _store(self, image: np.ndarray, file_fps: float) -> None:
        now = time.monotonic()
        t = self._index / file_fps if file_fps > 0 else now - self._t0
        frame = Frame(self.camera_id, self._index, t, datetime.now(UTC), now, image)
        with self._lock:
            if self._latest is not None and self._latest.index > self._taken_index:
                self.frames_dropped += 1
            self._latest = frame
            self._index += 1
            self.frames_read += 1
            self._last_frame_mono = now

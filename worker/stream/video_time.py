"""Read a whole file (or a stream for N seconds) and sample it at ``fps`` in video time.

Used by ``python -m worker.analyse``: every frame is decoded in order (no pacing, no drops), and
a frame is analysed when its video time reaches the next sampling instant. A read failure
before the frame count in the file's header is reported as damage (``damaged_at``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

from worker.stream.open import is_file_source, open_capture
from worker.types import Frame

logger = logging.getLogger(__name__)


def video_time_frames(index: int, t: float, fps: float, next_due: float) -> tuple[bool, float]:
    """Sampling rule shared with the live path's file timing: take a frame when ``t`` has
    reached ``next_due`` (half a millisecond of slack for float time bases)."""
    if t + 5e-4 < next_due:
        return False, next_due
    step = 1.0 / fps
    while next_due <= t + 5e-4:
        next_due += step
    return True, next_due


class VideoTimeReader:
    """Iterate the frames of ``url`` to analyse at ``fps`` in video time."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        *,
        fps: float,
        start: datetime,
        seconds: float | None = None,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.camera_id, self.url, self.fps = camera_id, url, fps
        self.start, self.seconds = start, seconds
        self.opened = open_capture(url, open_timeout_s)  # SourceError names the URL
        self.is_file = is_file_source(url)
        self.native_fps = self.opened.fps
        self.frames_decoded = 0
        self.damaged_at: int | None = None

    @property
    def frame_count(self) -> int:
        """Frames announced by the file's header (0 when unknown)."""
        return self.opened.frame_count

    def __iter__(self) -> Iterator[Frame]:
        cap = self.opened.capture
        next_due, t0 = 0.0, time.monotonic()
        use_file_time = self.native_fps > 0 and (self.is_file or self.frame_count > 0)
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    self._note_end()
                    return
                index = self.frames_decoded
                self.frames_decoded += 1
                t = index / self.native_fps if use_file_time else time.monotonic() - t0
                if self.seconds is not None and t >= self.seconds:
                    return
                take, next_due = video_time_frames(index, t, self.fps, next_due)
                if take:
                    ts = self.start + timedelta(seconds=t)
                    yield Frame(self.camera_id, index, t, ts, time.monotonic(), image)
        finally:
            cap.release()

    def _note_end(self) -> None:
        expected = self.frame_count
        # Headers of some containers over-count by a frame or two; more is damage.
        if self.is_file and expected and self.frames_decoded < expected - 2:
            self.damaged_at = self.frames_decoded
            logger.error(
                "%s: read failed at frame %d of %d: the file is truncated or damaged",
                self.url,
                self.frames_decoded,
                expected,
            )

"""Camera sources against real stream servers on loopback (HTTP MJPEG, GStreamer RTSP)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.worker.conftest import Clip, MjpegServer, RtspServer, SilentServer
from worker.errors import SourceError
from worker.stream import Backoff, CameraSource, SourceState, open_capture
from worker.types import Frame


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def take_frames(source: CameraSource, count: int, timeout: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.take()
        if frame is not None:
            frames.append(frame)
        time.sleep(0.02)
    return frames


@pytest.mark.slow
def test_file_source_plays_at_native_rate_and_loops(clip: Clip) -> None:
    source = CameraSource("f", str(clip.path), loop_files=True)
    source.start()
    try:
        time.sleep(7.0)  # 12 frames at 2 fps = 6 s, then it loops
        snap = source.snapshot()
        assert snap.state == "running"
        assert 13 <= snap.frames_read <= 16, snap  # native rate, looped past the end
        assert snap.frames_dropped == snap.frames_read - 1  # nobody took any: latest only
        frame = source.take()
        assert frame is not None and frame.t == pytest.approx(frame.index / clip.fps)
        assert source.take() is None  # the same frame is never handed out twice
    finally:
        source.stop()
    assert source.state == SourceState.STOPPED


def test_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    source = CameraSource("m", str(tmp_path / "gone.mp4"))
    source.start()
    wait_for(lambda: source.state == SourceState.FAILED, 5, "failed state")
    assert source.last_error is not None and "gone.mp4 not found" in source.last_error


def test_malformed_urls_are_refused() -> None:
    with pytest.raises(SourceError, match="no host"):
        open_capture("rtsp:///path", 1.0)
    with pytest.raises(SourceError, match="unsupported scheme"):
        open_capture("ftp://host/cam", 1.0)


@pytest.mark.faults
def test_mjpeg_stream_survives_a_corrupt_frame(mjpeg_server: MjpegServer) -> None:
    source = CameraSource("http", mjpeg_server.url, stale_after_s=3.0, backoff=Backoff(0.2, 1.0))
    source.start()
    try:
        first = take_frames(source, 3, 15)
        assert len(first) == 3 and first[0].image.shape == (480, 960, 3)
        mjpeg_server.corrupt_next.set()
        later = take_frames(source, 5, 15)
        assert len(later) == 5, f"stream stopped after a corrupt frame: {source.snapshot()}"
        assert all(f.image.shape == (480, 960, 3) for f in later)
        assert source.state == SourceState.RUNNING
    finally:
        source.stop()


@pytest.mark.faults
def test_never_answering_url_keeps_retrying(silent_server: SilentServer) -> None:
    url = f"http://127.0.0.1:{silent_server.port}/cam"
    source = CameraSource("dead", url, open_timeout_s=0.5, backoff=Backoff(0.1, 0.4))
    start = time.monotonic()
    source.start()
    try:
        wait_for(lambda: source.state == SourceState.RECONNECTING, 10, "reconnecting")
        assert time.monotonic() - start < 5
        assert source.last_error is not None and url in source.last_error
    finally:
        source.stop()


@pytest.mark.faults
@pytest.mark.slow
def test_rtsp_reconnects_after_server_restart(rtsp_server: RtspServer) -> None:
    source = CameraSource(
        "rtsp", rtsp_server.url, stale_after_s=2.0, open_timeout_s=2.0, backoff=Backoff(0.2, 1.0)
    )
    source.start()
    try:
        frames = take_frames(source, 3, 20)
        assert len(frames) == 3, f"no frames over RTSP/TCP: {source.snapshot()}"
        assert frames[0].image.shape == (480, 960, 3)
        rtsp_server.kill()
        wait_for(lambda: source.state != SourceState.RUNNING, 10, "stream loss noticed")
        assert source.reconnects >= 1
        rtsp_server.start()
        wait_for(lambda: source.state == SourceState.RUNNING, 20, "running again")
        after = take_frames(source, 3, 20)
        assert len(after) == 3, f"no frames after restart: {source.snapshot()}"
    finally:
        source.stop()


@pytest.mark.slow
def test_progressive_mp4_over_http_plays_at_native_rate(h264_clip: Path) -> None:
    handler = functools.partial(QuietHandler, directory=str(h264_clip.parent))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{h264_clip.name}"
    source = CameraSource("mp4", url)
    source.start()
    try:
        wait_for(lambda: source.snapshot().frames_read >= 5, 15, "frames over HTTP")
        time.sleep(1.0)
        first = source.take()
        time.sleep(1.0)
        second = source.take()
        assert first is not None and second is not None
        assert 6 <= second.index - first.index <= 14  # ~10 frames per second of wall time
        assert second.t - first.t == pytest.approx((second.index - first.index) / 10.0)
    finally:
        source.stop()
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return

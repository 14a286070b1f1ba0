"""Open a cv2.VideoCapture for a camera URL (file path, webcam index, rtsp://, http(s)://)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2

from worker.errors import SourceError

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
# RTSP over TCP (interleaved): the FFmpeg backend reads its options from this variable.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


@dataclass
class OpenedCapture:
    """An opened capture and what is known about it."""

    capture: cv2.VideoCapture
    fps: float  # native rate (0 when unknown)
    frame_count: int  # frames in a file (0 when unknown / live)


def is_webcam(url: str) -> bool:
    """A bare integer selects a local webcam by index."""
    return url.strip().isdigit()


def is_file_source(url: str) -> bool:
    """Anything that is neither a webcam index nor a stream URL is a file path."""
    scheme = urlparse(url).scheme.lower()
    return not is_webcam(url) and scheme not in STREAM_SCHEMES


def check_url(url: str) -> None:
    """Reject malformed URLs before trying to open them."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in STREAM_SCHEMES and not parsed.hostname:
        raise SourceError(f"camera URL {url!r} has no host (expected e.g. rtsp://host:8554/path)")
    if "://" in url and scheme not in (*STREAM_SCHEMES, "file"):
        raise SourceError(
            f"camera URL {url!r} has unsupported scheme {scheme!r} "
            "(expected a file path, a webcam index, rtsp://, http:// or https://)"
        )


def open_capture(url: str, timeout_s: float) -> OpenedCapture:
    """Open ``url``; raises SourceError naming the URL when it cannot be opened."""
    check_url(url)
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    if is_webcam(url):
        cap = cv2.VideoCapture(int(url))
    elif is_file_source(url):
        path = Path(url.removeprefix("file://"))
        if not path.is_file():
            raise SourceError(f"video file {path} not found")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        what = "video file" if is_file_source(url) else "camera"
        raise SourceError(f"{what} {url!r} could not be opened (unreadable, or not answering)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not 0.0 < fps < 1000.0:
        fps = 0.0
    # Recorded media (files, progressive MP4 over HTTP) announce a frame count; live streams
    # report 0 or a negative number.
    count = 0 if is_webcam(url) else int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return OpenedCapture(cap, fps, max(0, count))

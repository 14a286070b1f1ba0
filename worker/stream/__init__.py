"""Video sources: files, webcams, RTSP (TCP) and HTTP (MJPEG / MP4) behind one state machine."""

from worker.stream.open import OpenedCapture, is_file_source, open_capture
from worker.stream.source import Backoff, CameraSource, SourceState
from worker.stream.video_time import VideoTimeReader

__all__ = [
    "Backoff",
    "CameraSource",
    "OpenedCapture",
    "SourceState",
    "VideoTimeReader",
    "is_file_source",
    "open_capture",
]

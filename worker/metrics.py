"""Prometheus metrics of one worker (own registry, so several workers can share a process)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

STATES = ("connecting", "running", "reconnecting", "ended", "failed", "stopped")


class Metrics:
    """Every metric the worker exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_read = Counter("emo_frames_read", "Frames decoded", ["camera"], registry=r)
        self.frames_dropped = Counter(
            "emo_frames_dropped",
            "Frames replaced before analysis (latest-frame)",
            ["camera"],
            registry=r,
        )
        self.frames_analysed = Counter(
            "emo_frames_analysed", "Frames analysed and published", ["camera"], registry=r
        )
        self.faces_analysed = Counter(
            "emo_faces_analysed", "Faces scored by the model", ["camera"], registry=r
        )
        self.reconnects = Counter("emo_reconnects", "Source reconnects", ["camera"], registry=r)
        self.camera_state = Gauge(
            "emo_camera_state", "1 for the camera's current state", ["camera", "state"], registry=r
        )
        self.inference_seconds = Histogram(
            "emo_inference_seconds",
            "Model time per batch",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
        )
        self.detect_seconds = Histogram(
            "emo_detect_seconds",
            "Detection time per batch",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2),
        )
        self.latency_seconds = Histogram(
            "emo_frame_latency_seconds",
            "Frame capture -> publish",
            registry=r,
            buckets=(0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 4.0),
        )
        self.publish_dropped = Counter(
            "emo_publish_dropped",
            "Messages dropped because the publish buffer was full",
            registry=r,
        )
        self.publish_buffered = Gauge(
            "emo_publish_buffered", "Messages waiting for Redis", registry=r
        )
        self.cameras_held = Gauge("emo_cameras_held", "Cameras this worker analyses", registry=r)

    def set_state(self, camera: str, state: str) -> None:
        """Mark ``state`` as the camera's only current state."""
        for s in STATES:
            self.camera_state.labels(camera=camera, state=s).set(1.0 if s == state else 0.0)

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0 = do not serve)."""
        if port:
            start_http_server(port, registry=self.registry)
            logger.info("metrics on :%d/metrics", port)

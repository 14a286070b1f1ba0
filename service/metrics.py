"""Prometheus metrics, one registry per app/process (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters the ingest, live and API parts update; ``render()`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.samples_ingested = Counter(
            "emo_samples_ingested",
            "Per-student emotion samples stored (one per student per second)",
            registry=self.registry,
        )
        self.aggregates_ingested = Counter(
            "emo_aggregates_ingested", "Class aggregates stored", registry=self.registry
        )
        self.frames_ingested = Counter(
            "emo_frames_ingested",
            "Worker frame messages accepted by ingest",
            registry=self.registry,
        )
        self.dropped = Counter(
            "emo_ingest_dropped",
            "Frames or faces not stored, by reason (privacy mode, opt-out, unknown ids, invalid)",
            ["reason"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "emo_ingest_batch_seconds", "Time to store one ingest batch", registry=self.registry
        )
        self.live_clients = Gauge(
            "emo_live_clients", "Connected live clients (WS + SSE)", registry=self.registry
        )
        self.live_dropped = Counter(
            "emo_live_dropped", "Live events dropped for slow clients", registry=self.registry
        )

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)

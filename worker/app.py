"""The worker's composition root: ``run(settings, publisher=...)`` builds, wires and starts.

The embedded single-machine mode passes ``publisher=CallbackPublisher(ingest)`` (or any
object with ``publish``/``close``) and a ``stop`` event; ``python -m worker`` passes neither and
publishes to the Redis stream.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import redis
import torch

from contract import FrameMessage
from worker.coordination import Coordinator
from worker.detect import MtcnnDetector, TrackingGuidedDetector
from worker.infer import OnnxClassifier
from worker.metrics import Metrics
from worker.pipeline import FramePipeline, StagedRunner
from worker.publish import CallbackPublisher, Publisher, RedisPublisher
from worker.scheduler import Scheduler
from worker.settings import WorkerSettings
from worker.track import IouTracker

logger = logging.getLogger(__name__)


def stage_threads(settings: WorkerSettings) -> int:
    """Threads per stage. Each overlapped stage may use every core: the stages wait on each
    other much of the time, and measured on 2 cores (``python -m worker.bench``) all-cores
    stages gave 76 faces/s against 67 for half the cores each."""
    if settings.threads:
        return settings.threads
    return max(1, os.cpu_count() or 2)


def build_pipeline(
    settings: WorkerSettings, publisher: Publisher, metrics: Metrics
) -> FramePipeline:
    """Every analysis stage, wired; shared by the live worker, analyse and the bench."""
    threads = stage_threads(settings)
    torch.set_num_threads(threads)
    classifier = OnnxClassifier(
        settings.model_path, settings.device, threads=threads, max_batch=settings.max_batch
    )
    base = MtcnnDetector(settings.detect, settings.device)
    detector = TrackingGuidedDetector(base, settings.detect.full_every)
    return FramePipeline(
        worker_id=settings.worker_id,
        detector=detector,
        classifier=classifier,
        make_tracker=lambda: IouTracker(settings.track_iou, settings.track_max_age_s),
        smoothing_tau_s=settings.smoothing_tau_s,
        publisher=publisher,
        metrics=metrics,
    )


def run(
    settings: WorkerSettings,
    *,
    publisher: Publisher | Callable[[FrameMessage], None] | None = None,
    stop: threading.Event | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Run the live worker until ``stop`` is set (graceful: finish the batch, release leases)."""
    stop = stop or threading.Event()
    metrics = metrics or Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    client = (
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        if settings.redis_url
        else None
    )
    if publisher is None:
        if settings.redis_url is None:
            raise ValueError("no publisher given and no redis_url set")
        sink: Publisher = RedisPublisher(
            settings.redis_url,
            metrics,
            maxlen=settings.stream_maxlen,
            buffer=settings.publish_buffer,
        )
    elif callable(publisher) and not hasattr(publisher, "publish"):
        sink = CallbackPublisher(publisher)
    else:
        sink = publisher  # type: ignore[assignment]
    try:
        pipeline = build_pipeline(settings, sink, metrics)
    except BaseException:
        sink.close()
        raise
    runner = StagedRunner(pipeline)
    coordinator = Coordinator(
        settings.worker_id,
        client,
        static=settings.cameras,
        from_redis=settings.cameras_from_redis,
        lease_ttl_s=settings.lease_ttl_s,
        heartbeat_ttl_s=settings.heartbeat_ttl_s,
        max_cameras=settings.max_cameras,
    )
    scheduler = Scheduler(settings, coordinator, pipeline, runner, metrics)
    logger.info("worker %s started", settings.worker_id)
    try:
        scheduler.run(stop)
    finally:
        logger.info("worker %s stopping: finishing the batch in flight", settings.worker_id)
        scheduler.close()
        runner.close()
        pipeline.close()
        coordinator.release_all()
        sink.close()
        if client is not None:
            client.close()
        logger.info("worker %s stopped", settings.worker_id)

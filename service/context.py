"""Everything a process's parts share, built once by the composition root and passed down."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.cache import QueryCache
from service.control import CameraControl, MemoryCameraControl, RedisCameraControl
from service.ingest.writer import Ingestor
from service.live.bus import LiveBus, LiveHub, MemoryBus, RedisBus
from service.metrics import Metrics
from service.settings import ServiceSettings
from service.store.db import make_engine, make_session_factory


@dataclass(frozen=True)
class AppContext:
    """The parts of one API (or ingest) process."""

    settings: ServiceSettings
    engine: Engine
    sessions: sessionmaker[Session]
    metrics: Metrics
    bus: LiveBus
    control: CameraControl
    ingestor: Ingestor
    redis: redis.Redis | None
    cache: QueryCache


def build_context(
    settings: ServiceSettings, sessions: sessionmaker[Session] | None = None
) -> AppContext:
    """Build engine, bus, control plane and ingestor from ``settings``.

    ``sessions`` replaces the session factory (tests bind it to a rolled-back transaction).
    """
    engine = make_engine(settings)
    factory = sessions or make_session_factory(engine)
    metrics = Metrics()
    hub = LiveHub(settings.live_queue_size, metrics)
    client: redis.Redis | None = None
    bus: LiveBus
    control: CameraControl
    if settings.bus == "redis":
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=3
        )
        bus = RedisBus(hub, settings.redis_url, settings.live_channel)
        control = RedisCameraControl(client)
    else:
        bus = MemoryBus(hub)
        control = MemoryCameraControl()
    ingestor = Ingestor(factory, bus, metrics, settings.k_anonymity)
    cache = QueryCache(settings.history_cache_s)
    return AppContext(settings, engine, factory, metrics, bus, control, ingestor, client, cache)

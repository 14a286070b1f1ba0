"""Per-process fan-out hub and the two buses that feed it (Redis pub/sub, in-process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import redis
import redis.asyncio as aioredis

from service.live.events import LiveEvent
from service.metrics import Metrics

logger = logging.getLogger(__name__)


class LiveHub:
    """Session id -> bounded client queues; a slow client loses its oldest events, counted."""

    def __init__(self, queue_size: int, metrics: Metrics) -> None:
        self._queue_size = queue_size
        self._metrics = metrics
        self._subs: dict[str, set[asyncio.Queue[LiveEvent]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop the clients live on (for thread-safe dispatch)."""
        self._loop = loop

    @contextlib.contextmanager
    def subscribe(self, session_id: str) -> Iterator[asyncio.Queue[LiveEvent]]:
        """A queue receiving this session's events while the ``with`` block lasts."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(self._queue_size)
        self._subs.setdefault(session_id, set()).add(queue)
        self._metrics.live_clients.inc()
        try:
            yield queue
        finally:
            subs = self._subs.get(session_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subs[session_id]
            self._metrics.live_clients.dec()

    def dispatch(self, event: LiveEvent) -> None:
        """Deliver to every local subscriber of the event's session (call on the loop)."""
        for queue in tuple(self._subs.get(event.session_id, ())):
            if queue.full():
                queue.get_nowait()
                self._metrics.live_dropped.inc()
            queue.put_nowait(event)

    def dispatch_threadsafe(self, event: LiveEvent) -> None:
        """Deliver from any thread (no-op before the loop is bound)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.dispatch, event)


class LiveBus(Protocol):
    """Carries stored events from ingest to every API process's hub."""

    hub: LiveHub

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publish(self, events: list[LiveEvent]) -> None: ...


class MemoryBus:
    """Embedded mode: ingest and API share the process."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())

    async def stop(self) -> None:
        return None

    def publish(self, events: list[LiveEvent]) -> None:
        for event in events:
            self.hub.dispatch_threadsafe(event)


class RedisBus:
    """One Redis subscription per process on ``channel``; publishing uses a sync client."""

    def __init__(self, hub: LiveHub, redis_url: str, channel: str) -> None:
        self.hub = hub
        self._url = redis_url
        self._channel = channel
        self._pub = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(), name="live-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout=2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pub.close()

    def publish(self, events: list[LiveEvent]) -> None:
        if not events:
            return
        try:
            pipe = self._pub.pipeline(transaction=False)
            for event in events:
                pipe.publish(self._channel, event.to_json())
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("live publish of %d events failed: %s", len(events), exc)

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            client = aioredis.Redis.from_url(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._ready.set()
                    backoff = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch_raw(message["data"])
            except (redis.RedisError, OSError) as exc:
                logger.warning("live subscription lost (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                await client.aclose()

    def _dispatch_raw(self, raw: bytes) -> None:
        try:
            event = LiveEvent.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring malformed live event: %s", exc)
            return
        self.hub.dispatch(event)

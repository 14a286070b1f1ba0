"""A short-lived, single-flight cache for history results read by many dashboards at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class QueryCache:
    """Results live ``ttl_s`` seconds; concurrent misses on one key compute it once.

    Staleness is bounded by ``ttl_s`` (data ingested meanwhile shows up at most that late).
    ``ttl_s == 0`` disables caching. Thread-safe (sync endpoints run in a thread pool).
    """

    def __init__(self, ttl_s: float, max_entries: int = 512) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[Hashable, threading.Lock] = {}
        self._awaited: dict[Hashable, asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        if self._ttl <= 0:
            return compute()
        found, value = self._lookup(key)
        if found:
            return value
        with self._lock:
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:
            found, value = self._lookup(key)
            if found:
                return value
            result = compute()
            self.put(key, result)
            with self._lock:
                self.misses += 1
                self._inflight.pop(key, None)
            return result

    async def get_or_await(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """Async form for the event loop: a hit costs a dict lookup; concurrent misses on one
        key await a single ``compute()`` (its exception, too, is shared by all of them). The
        computation runs as its own task, so a client that disconnects cancels nobody else's."""
        if self._ttl <= 0:
            return await compute()
        found, value = self._lookup(key)
        if found:
            return cast(T, value)
        task = self._awaited.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fill(key, compute))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._awaited[key] = task
        return cast(T, await asyncio.shield(task))

    async def _fill(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await compute()
        finally:
            self._awaited.pop(key, None)
        self.put(key, result)
        return result

    def peek(self, key: Hashable) -> Any | None:
        """The live value under ``key``, or None (never computes, never waits)."""
        return self._lookup(key)[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` for ``ttl_s`` seconds (no-op when caching is off)."""
        if self._ttl <= 0:
            return
        with self._lock:
            self._values[key] = (time.monotonic() + self._ttl, value)
            self._values.move_to_end(key)
            while len(self._values) > self._max:
                self._values.popitem(last=False)

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._values.get(key)
            if entry is not None and entry[0] > time.monotonic():
                self.hits += 1
                return True, entry[1]
        return False, None

"""A short-lived, single-flight cache for history results read by many dashboards at once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

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
            with self._lock:
                self.misses += 1
                self._values[key] = (time.monotonic() + self._ttl, result)
                self._values.move_to_end(key)
                while len(self._values) > self._max:
                    self._values.popitem(last=False)
                self._inflight.pop(key, None)
            return result

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            entry = self._values.get(key)
            if entry is not None and entry[0] > time.monotonic():
                self.hits += 1
                return True, entry[1]
        return False, None

"""Publishing FrameMessages: Redis Stream (buffered through outages), in-process sink, JSONL.

Frames and crops never reach a publisher: a FrameMessage holds boxes and scores only.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import redis

from contract import FrameMessage
from contract.keys import FRAMES_STREAM
from worker.errors import PublishError
from worker.metrics import Metrics

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Takes one message per analysed frame; must not block the pipeline for long."""

    def publish(self, message: FrameMessage) -> None: ...

    def close(self) -> None: ...


class CallbackPublisher:
    """In-process publisher: hands each message to a callable (the embedded service's ingest)."""

    def __init__(self, sink: Callable[[FrameMessage], None]) -> None:
        self.sink = sink

    def publish(self, message: FrameMessage) -> None:
        """Call the sink; its exceptions are logged, never lost silently."""
        try:
            self.sink(message)
        except Exception:
            logger.exception("in-process sink failed for message %s", message.message_key)
            raise

    def close(self) -> None:
        """Nothing to release."""


class JsonlPublisher:
    """One JSON line per message (the analyse command's output); flushed per line."""

    def __init__(self, path: Path) -> None:
        try:
            self._fh: IO[str] = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise PublishError(f"cannot write output file {path}: {exc}") from exc
        self.path = path
        self.count = 0

    def publish(self, message: FrameMessage) -> None:
        """Append one line."""
        self._fh.write(message.model_dump_json() + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class FanoutPublisher:
    """Sends every message to several publishers."""

    def __init__(self, *publishers: Publisher) -> None:
        self.publishers = publishers

    def publish(self, message: FrameMessage) -> None:
        """Publish to each in turn."""
        for p in self.publishers:
            p.publish(message)

    def close(self) -> None:
        """Close each."""
        for p in self.publishers:
            p.close()


class RedisPublisher:
    """XADD to the frames stream (approximate MAXLEN) from a background thread.

    ``publish`` only appends to a bounded buffer, so a slow or absent Redis never stalls the
    pipeline. While Redis is down messages wait in the buffer; when it is full the oldest are
    dropped and counted (``emo_publish_dropped_total``) and a warning is logged.
    """

    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        stream: str = FRAMES_STREAM,
        maxlen: int = 100_000,
        buffer: int = 1000,
        retry_s: float = 0.5,
    ) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        self.url, self.stream, self.maxlen, self.retry_s = url, stream, maxlen, retry_s
        self.metrics = metrics
        self._buffer: deque[FrameMessage] = deque()
        self._inflight: list[FrameMessage] = []  # taken from the buffer, being sent
        self._capacity = buffer
        self._cond = threading.Condition()
        self._closing = False
        self.sent = 0
        self.dropped = 0
        self._down = False
        self._thread = threading.Thread(target=self._run, name="redis-publisher", daemon=True)
        self._thread.start()

    def publish(self, message: FrameMessage) -> None:
        """Queue a message (never blocks on Redis)."""
        with self._cond:
            self._buffer.append(message)
            self._trim()
            self._cond.notify()

    def _trim(self) -> None:
        """Drop (and count) the oldest queued messages beyond capacity; lock held.

        Messages being sent are not counted here (they may still arrive); if their send
        fails they return to the front of the queue and the oldest beyond capacity go then,
        so it is always the oldest messages that are dropped.
        """
        while len(self._buffer) > self._capacity:
            self._buffer.popleft()
            self.dropped += 1
            self.metrics.publish_dropped.inc()
            logger.warning(
                "publish buffer full (%d): dropped the oldest message (%d dropped so far)",
                self._capacity,
                self.dropped,
            )
        self.metrics.publish_buffered.set(len(self._buffer) + len(self._inflight))

    def pending(self) -> int:
        """Messages not yet in Redis."""
        with self._cond:
            return len(self._buffer) + len(self._inflight)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closing:
                    self._cond.wait()
                if not self._buffer and self._closing:
                    return
                while self._buffer and len(self._inflight) < 100:
                    self._inflight.append(self._buffer.popleft())
                batch = list(self._inflight)
            ok = self._send(batch)
            with self._cond:
                if not ok:  # back to the front, in order; the oldest beyond capacity go
                    self._buffer.extendleft(reversed(self._inflight))
                self._inflight.clear()
                self._trim()
                if not ok:
                    if self._closing:
                        return
                    self._cond.wait(self.retry_s)

    def _send(self, batch: list[FrameMessage]) -> bool:
        try:
            pipe = self.client.pipeline(transaction=False)
            for m in batch:
                pipe.xadd(
                    self.stream, {"data": m.model_dump_json()}, maxlen=self.maxlen, approximate=True
                )
            pipe.execute()
        except redis.RedisError as exc:
            if not self._down:
                logger.warning("Redis %s unavailable (%s); buffering messages", self.url, exc)
            self._down = True
            return False
        if self._down:
            logger.info("Redis %s is back; flushing %d buffered messages", self.url, len(batch))
        self._down = False
        self.sent += len(batch)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what Redis accepts within ``timeout_s``; report anything left unsent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        left = self.pending()
        if left:
            logger.error("closing with %d messages not delivered to %s", left, self.url)
        self.client.close()

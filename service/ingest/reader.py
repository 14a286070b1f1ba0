"""Redis Streams consumer group: read, store in one transaction, XACK only after commit."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import redis
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from contract import FrameMessage
from contract.keys import FRAMES_STREAM
from service.ingest.writer import Ingestor, IngestResult
from service.metrics import Metrics
from service.settings import ServiceSettings

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
#: Every this many polls the reader also XAUTOCLAIMs entries stuck in other consumers.
CLAIM_EVERY_POLLS = 100


def default_consumer_name() -> str:
    """hostname-pid: unique per process, stable for its lifetime."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StreamReader:
    """Consumer-group reader of ``contract.keys.FRAMES_STREAM``.

    On start it re-reads its own pending entries and XAUTOCLAIMs entries other consumers left
    pending longer than ``ingest_claim_idle_ms``. Invalid entries go to the dead-letter stream
    (with the error) and are acknowledged; a database failure acknowledges nothing, so the
    batch is retried from the pending list.
    """

    def __init__(
        self,
        client: redis.Redis,
        ingestor: Ingestor,
        settings: ServiceSettings,
        metrics: Metrics,
        stream: str = FRAMES_STREAM,
    ) -> None:
        self._redis = client
        self._ingestor = ingestor
        self._metrics = metrics
        self._stream = stream
        self._group = settings.ingest_group
        self._consumer = settings.ingest_consumer or default_consumer_name()
        self._batch = settings.ingest_batch
        self._block_ms = settings.ingest_block_ms
        self._claim_idle_ms = settings.ingest_claim_idle_ms
        self._dead = settings.ingest_dead_letter_stream
        self._backlog = True

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def claim_pending(self) -> int:
        """XAUTOCLAIM entries idle in other consumers; store them. Returns entries handled."""
        handled, cursor = 0, "0-0"
        while True:
            reply: Any = self._redis.xautoclaim(
                self._stream,
                self._group,
                self._consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=cursor,
                count=self._batch,
            )
            cursor, entries = _str(reply[0]), reply[1]
            entries = [e for e in entries if e is not None and e[1] is not None]
            if entries:
                self.process(entries)
                handled += len(entries)
            if cursor == "0-0":
                return handled

    def poll_once(self) -> IngestResult | None:
        """Read one batch (own pending first, then new entries) and store it."""
        start_id = "0" if self._backlog else ">"
        reply: Any = self._redis.xreadgroup(
            self._group,
            self._consumer,
            {self._stream: start_id},
            count=self._batch,
            block=None if self._backlog else self._block_ms,
        )
        entries: list[Entry] = list(reply[0][1]) if reply else []
        if self._backlog and not entries:
            self._backlog = False
            return None
        return self.process(entries) if entries else None

    def process(self, entries: list[Entry]) -> IngestResult | None:
        """Parse, store in one transaction, then acknowledge; invalid entries go dead-letter."""
        valid: list[tuple[bytes, dict[bytes, bytes], FrameMessage]] = []
        invalid: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # trimmed from the stream while pending: nothing left to store
            try:
                valid.append((entry_id, fields, FrameMessage.model_validate_json(fields[b"data"])))
            except KeyError:
                invalid.append((entry_id, fields, "entry has no 'data' field"))
            except ValidationError as exc:
                invalid.append((entry_id, fields, f"invalid FrameMessage: {exc}"))
        try:
            result = self._ingestor.ingest([msg for _, _, msg in valid])
        except OperationalError:
            self._backlog = True  # retry from our pending list
            raise
        except SQLAlchemyError as exc:
            logger.warning("ingest: batch failed (%s); storing entries one by one", exc)
            result = self._one_by_one(valid, invalid)
        self._dead_letter(invalid)
        self._redis.xack(self._stream, self._group, *[entry_id for entry_id, _ in entries])
        return result

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; database or Redis outages back off and retry."""
        backoff, ready, polls = 0.5, False, 0
        while not stop.is_set():
            try:
                if not ready:
                    self.ensure_group()
                    self.claim_pending()
                    ready = True
                self.poll_once()
                polls += 1
                if polls % CLAIM_EVERY_POLLS == 0:
                    self.claim_pending()
                backoff = 0.5
            except (OperationalError, redis.RedisError) as exc:
                logger.warning("ingest: %s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    ready = False

    def _one_by_one(
        self,
        valid: list[tuple[bytes, dict[bytes, bytes], FrameMessage]],
        invalid: list[tuple[bytes, dict[bytes, bytes], str]],
    ) -> IngestResult:
        frames = samples = aggregates = 0
        for entry_id, fields, msg in valid:
            try:
                one = self._ingestor.ingest([msg])
            except OperationalError:
                self._backlog = True
                raise
            except SQLAlchemyError as exc:
                invalid.append((entry_id, fields, f"could not be stored: {exc}"))
                continue
            frames, samples = frames + one.frames, samples + one.samples
            aggregates += one.aggregates
        return IngestResult(frames, samples, aggregates)

    def _dead_letter(self, invalid: list[tuple[bytes, dict[bytes, bytes], str]]) -> None:
        for entry_id, fields, error in invalid:
            logger.error("ingest: entry %s rejected: %s", _str(entry_id), error[:500])
            self._metrics.dropped.labels("invalid_message").inc()
            self._redis.xadd(
                self._dead,
                {
                    "id": entry_id,
                    "error": error[:4000],
                    "data": fields.get(b"data", b""),
                },
                maxlen=100_000,
                approximate=True,
            )


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

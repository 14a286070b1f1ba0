"""Ingest: worker FrameMessages -> stored samples and aggregates (exactly once) -> live bus.

Two entry points: :class:`service.ingest.writer.Ingestor.ingest` takes parsed
``contract.FrameMessage`` objects directly (embedded mode, no Redis), and
:class:`service.ingest.reader.StreamReader` reads the Redis stream with a consumer group.
Run it inside the API (``EMO_INGEST_IN_API=true``) or alone: ``python -m service.ingest``.
"""

"""Embedded single-machine mode: API + ingest in one process, SQLite, in-process live bus.

No Redis: the in-process worker hands parsed ``contract.FrameMessage`` objects to
:meth:`EmbeddedService.ingest`, reads its camera assignments from
:attr:`EmbeddedService.control` (a :class:`~service.control.MemoryCameraControl`: ``assignments``
dict and ``changed`` event) and reports status with ``control.set_status``. The worker itself is
wired in by the process that imports both packages (the service may not import the worker).

``python -m service.embedded`` runs the API part alone on ``var/emotions.db``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from contract import FrameMessage
from service.context import AppContext, build_context
from service.control import MemoryCameraControl
from service.ingest.writer import IngestResult
from service.main import create_app
from service.settings import ServiceSettings

logger = logging.getLogger(__name__)

DEFAULT_DB = Path("var") / "emotions.db"


def embedded_settings(db_path: Path = DEFAULT_DB, **overrides: object) -> ServiceSettings:
    """Settings for the embedded mode: SQLite file, memory bus, no ingest thread."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "database_url": f"sqlite:///{db_path}",
        "bus": "memory",
        "ingest_in_api": False,
        **overrides,
    }
    return ServiceSettings.model_validate(values)


class EmbeddedService:
    """The service parts of the single-process deployment."""

    def __init__(self, settings: ServiceSettings) -> None:
        if settings.bus != "memory":
            raise ValueError(f"embedded mode needs EMO_BUS=memory, got {settings.bus!r}")
        self.context: AppContext = build_context(settings)
        self.app: FastAPI = create_app(context=self.context)

    @property
    def control(self) -> MemoryCameraControl:
        control = self.context.control
        assert isinstance(control, MemoryCameraControl)  # guaranteed by bus == "memory"
        return control

    def ingest(self, messages: Sequence[FrameMessage]) -> IngestResult:
        """Store a batch (one transaction) and publish it to live clients of this process."""
        return self.context.ingestor.ingest(messages)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.embedded", description=__doc__)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--source", help="accepted for `make run`; needs the worker wiring")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = embedded_settings(args.db)
    service = EmbeddedService(settings)
    if args.source:
        logger.warning(
            "--source %s: this entry point runs the API only; the worker is attached by the "
            "process that imports both worker and service",
            args.source,
        )
    uvicorn.run(service.app, host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()

"""``python -m worker``: the live worker, configured from EMO_WORKER_* environment variables."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from pydantic import ValidationError
from pydantic_settings import SettingsError

from worker.app import run
from worker.errors import WorkerError
from worker.settings import WorkerSettings

logger = logging.getLogger("worker")


def main() -> int:
    """Parse settings, install SIGTERM/SIGINT handlers, run until told to stop."""
    try:
        settings = WorkerSettings()
    except (ValidationError, SettingsError) as exc:
        logging.basicConfig(level=logging.INFO)
        logger.error(
            "invalid worker settings: %s (field X is read from EMO_WORKER_X; lists as JSON)", exc
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    try:
        run(settings, stop=stop)
    except WorkerError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

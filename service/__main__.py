"""``python -m service [--host H] [--port P]``: the API under uvicorn (EMO_HOST, EMO_PORT)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from service.main import create_app
from service.settings import ServiceSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default=None, help="default: EMO_HOST (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default: EMO_PORT (8000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ServiceSettings()
    host = args.host or settings.host
    port = args.port or settings.port
    if settings.workers > 1:  # each worker process builds its own app from the environment
        uvicorn.run(
            "service.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_level="info",
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()

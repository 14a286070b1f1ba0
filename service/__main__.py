"""``python -m service``: the API under uvicorn (EMO_HOST, EMO_PORT)."""

from __future__ import annotations

import logging

import uvicorn

from service.main import create_app
from service.settings import ServiceSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ServiceSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()

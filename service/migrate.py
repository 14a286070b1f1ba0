"""``python -m service.migrate``: wait for the database, upgrade to head, create the bootstrap
admin when EMO_BOOTSTRAP_ADMIN_USERNAME/PASSWORD are set. A one-shot deployment step."""

from __future__ import annotations

import argparse
import logging

from service.context import build_context
from service.main import prepare_database
from service.settings import ServiceSettings


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m service.migrate", description=__doc__).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ServiceSettings().model_copy(update={"migrate_on_start": True, "bus": "memory"})
    ctx = build_context(settings)
    prepare_database(ctx)
    ctx.engine.dispose()


if __name__ == "__main__":
    main()

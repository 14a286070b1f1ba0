"""``python -m service.users create-admin --username NAME [--password-env VAR]``.

Creates the first admin so a fresh deployment can log in. The password comes from stdin with
``--password-stdin``, else from EMO_BOOTSTRAP_ADMIN_PASSWORD, else it is generated and printed
once (JSON on stdout). Exit code 1 when the user already exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys

from service.main import ensure_admin
from service.settings import ServiceSettings
from service.store.db import make_engine, make_session_factory, migrate, wait_for_db

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.users", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-admin", help="create an admin user")
    create.add_argument("--username", default="admin")
    create.add_argument("--password-stdin", action="store_true", help="read the password")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = ServiceSettings()
    password: str | None = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif settings.bootstrap_admin_password is not None:
        password = settings.bootstrap_admin_password.get_secret_value()
    generated = password is None
    if password is None:
        password = secrets.token_urlsafe(12)
    if len(password) < 8:
        parser.error("the admin password must have at least 8 characters")
    engine = make_engine(settings)
    wait_for_db(engine, settings.db_connect_retries, settings.db_retry_interval_s)
    if settings.migrate_on_start:
        migrate(engine)
    created = ensure_admin(make_session_factory(engine), args.username, password)
    engine.dispose()
    out: dict[str, object] = {"username": args.username, "created": created}
    if created and generated:
        out["password"] = password
    sys.stdout.write(json.dumps(out) + "\n")
    return 0 if created else 1


if __name__ == "__main__":
    raise SystemExit(main())

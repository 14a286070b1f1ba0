"""The entry-point wrapper shared by every ``python -m models.*`` job."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Protocol

from models.errors import ModelsError

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


class Main(Protocol):
    """A job's ``main``: argv (``None``: ``sys.argv[1:]``) -> exit status."""

    def __call__(self, argv: list[str] | None = None, /) -> int: ...


def entry_point(main: Callable[[list[str] | None], int]) -> Main:
    """Wrap a job's ``main(argv) -> exit status``.

    The wrapper sets up INFO logging on stderr, and a :class:`ModelsError` (bad input: its
    message names the file and what was expected) ends the job with one ``error: ...`` line on
    stderr and exit status 2 instead of a traceback. Other exceptions are bugs and propagate.
    """

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
        try:
            return main(argv)
        except ModelsError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2

    return wrapped

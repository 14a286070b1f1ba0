"""Teacher dashboard and analyst views: static HTML/CSS/JS modules served under ``/dashboard/``.

The pages talk only to the public API (``/api/v1``) with the token from the login form; live
data comes from the session WebSocket. Charting: Chart.js, vendored under ``static/vendor``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/dashboard"
#: Everything is same-origin: scripts, styles, API calls and the live WebSocket.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def resolve_static(path: str) -> Path | None:
    """The file under STATIC_DIR that ``path`` names (``""`` -> index.html), or None."""
    candidate = (STATIC_DIR / (path or "index.html")).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        return None
    return candidate


@router.get("/")
@router.get(PREFIX)
def dashboard_root() -> RedirectResponse:
    """``/`` and ``/dashboard`` lead to the dashboard."""
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get(PREFIX + "/{path:path}")
def dashboard_file(path: str) -> Response:
    """A static file of the dashboard (404 naming the path when there is none)."""
    found = resolve_static(path)
    if found is None:
        return PlainTextResponse(f"dashboard file {path!r} not found", status_code=404)
    return FileResponse(found, headers=HEADERS)

"""The dashboard's static pages: served by the API, same-origin only, vendored chart library."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from service.dashboard import CSP, STATIC_DIR, resolve_static

#: Anything the page could load from elsewhere: an absolute URL or a protocol-relative one.
EXTERNAL = re.compile(
    r"""(src|href)\s*=\s*["'](https?:)?//|import\s[^;]*["']https?://|url\(\s*["']?https?://"""
)


def test_pages_scripts_and_styles_are_served_with_a_strict_policy(client: TestClient) -> None:
    root = client.get("/dashboard", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "script-src 'self'" in CSP
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        if src.startswith(("#", "data:")):
            continue
        asset = client.get(f"/dashboard/{src}")
        assert asset.status_code == 200, src
    script = client.get("/dashboard/js/app.js")
    assert "javascript" in script.headers["content-type"]


def test_unknown_and_escaping_paths_are_404_naming_the_path(client: TestClient) -> None:
    missing = client.get("/dashboard/js/nope.js")
    assert missing.status_code == 404 and "js/nope.js" in missing.text
    assert resolve_static("../__init__.py") is None
    assert resolve_static("../../settings.py") is None
    assert client.get("/dashboard/%2e%2e/__init__.py").status_code == 404


def test_nothing_is_loaded_from_a_cdn_and_the_library_is_vendored_with_its_licence() -> None:
    own = [p for p in STATIC_DIR.rglob("*") if p.suffix in {".html", ".js", ".css"}]
    own = [p for p in own if "vendor" not in p.parts]
    assert len(own) >= 8
    for path in own:
        assert not EXTERNAL.search(path.read_text()), f"{path} references an external URL"
    vendor = STATIC_DIR / "vendor" / "chart.js-4.6.1"
    assert "Chart.js v4.6.1" in (vendor / "chart.umd.min.js").read_text()[:200]
    assert "MIT License" in (vendor / "LICENSE.md").read_text()
    assert "chart.js-4.6.1/chart.umd.min.js" in (STATIC_DIR / "index.html").read_text()


def test_every_control_has_a_label_or_text() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for tag, control in re.findall(r"<(input|select)[^>]*id=\"([^\"]+)\"", html):
        assert control in labelled, f"<{tag} id={control}> has no <label for>"
    for button in re.findall(r"<button[^>]*>(.*?)</button>", html):
        assert button.strip(), "a button without text"


def test_alert_benchmark_runs_and_prints_json(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Smoke test of ``python -m service.dashboard.bench`` on a tiny session (``pg_url``:
    Postgres answers, or the test skips/fails like every database test)."""
    from service.dashboard import bench
    from tests.conftest import PG_ADMIN_URL

    args = ["--admin-url", PG_ADMIN_URL, "--minutes", "1", "--students", "4", "--repeats", "2"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 60 * 4
    for key in ("default_rules", "busy_rules"):
        assert result[key]["first_full_ms"] > 0 and result[key]["windowed_p95_ms"] > 0
    assert result["busy_rules"]["alerts_stored"] >= 1

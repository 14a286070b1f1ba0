"""`make run`'s process on a fresh var dir: scores visible in the history API within 60 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from launcher.settings import REPO_ROOT
from tests.net import free_port

pytestmark = pytest.mark.slow


def test_make_run_shows_per_student_scores_within_60_s_and_stops_cleanly(
    tmp_path: Path, data_dir: Path
) -> None:
    port = free_port()
    env = {**os.environ, "EMO_RUN_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    env["EMO_RUN_DATA_DIR"] = str(data_dir)
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    base = f"http://127.0.0.1:{port}"
    try:
        login = tmp_path / "var" / "admin-login.txt"
        students: list[dict[str, object]] = []
        session_id = ""
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() - started < 60:
                time.sleep(2)
                assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                if not login.is_file():
                    continue
                user, password = (p.strip() for p in login.read_text().split(":", 1))
                try:
                    token = client.post(
                        "/api/v1/auth/login", json={"username": user, "password": password}
                    ).json()["access_token"]
                except (httpx.HTTPError, KeyError):
                    continue
                headers = {"Authorization": f"Bearer {token}"}
                running = client.get(
                    "/api/v1/sessions", params={"running": True}, headers=headers
                ).json()["items"]
                if not running:
                    continue
                session_id = running[0]["id"]
                summary = client.get(f"/api/v1/sessions/{session_id}/summary", headers=headers)
                students = [s for s in summary.json()["students"] if s["seconds"] > 0]
                if len(students) >= 3:
                    break
            page = client.get("/", follow_redirects=True)
        elapsed = time.monotonic() - started
        assert len(students) >= 3, f"no per-student scores after {elapsed:.0f} s"
        assert page.status_code == 200 and "<html" in page.text.lower()
        for student in students:
            share = student["share"]
            assert isinstance(share, dict)
            assert abs(sum(share.values()) - 1.0) < 1e-6
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert "stopped" in (tmp_path / "run.log").read_text()

"""A real API process (``python -m service``) on a loopback port, a real headless Chromium.

The server runs with ingest inside the API process, against the run's Postgres database and
the test Redis database; data it commits is deleted at the end. Chromium is Debian's
(/usr/bin/chromium + /usr/bin/chromedriver); nothing is downloaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from contract import LABELS, ClassAggregate, FaceScore, FrameMessage, Probs
from contract.keys import CAMERA_STATUS_HASH, FRAMES_STREAM
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("EMO_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EMO_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class ApiProcess:
    """``python -m service`` in a subprocess; can be stopped and started again on its port."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self, timeout_s: float = 40.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"API process exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"API process did not answer in {timeout_s}s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def api_process(own_pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    """The API with in-process ingest and a bootstrap admin (``api.env`` holds its name)."""
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {
        **os.environ,
        "EMO_DATABASE_URL": own_pg_url,
        "EMO_REDIS_URL": redis_url,
        "EMO_PORT": str(port),
        "EMO_HOST": "127.0.0.1",
        "EMO_INGEST_IN_API": "true",
        "EMO_INGEST_CONSUMER": f"browser-{tag}",
        "EMO_LIVE_CHANNEL": f"emo:live:browser:{tag}",
        "EMO_BOOTSTRAP_ADMIN_USERNAME": f"dash-admin-{tag}",
        "EMO_BOOTSTRAP_ADMIN_PASSWORD": "admin-password-1",
        "EMO_DB_POOL_SIZE": "4",
    }
    api = ApiProcess(env, port, tmp_path / "api.log")
    api.start()
    try:
        yield api
    finally:
        api.stop()
        _cleanup(own_pg_url, env["EMO_BOOTSTRAP_ADMIN_USERNAME"], tag)


def _cleanup(pg_url: str, admin: str, tag: str) -> None:
    """Delete what this test committed (classrooms cascade to sessions, scores, alerts)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM classrooms WHERE name LIKE %s", (f"%{tag}%",))
        conn.execute(
            "DELETE FROM users WHERE username = %s OR username LIKE %s", (admin, f"%-{tag}")
        )


@dataclass
class Admin:
    """An API client logged in as the bootstrap admin."""

    api: ApiProcess
    tag: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"{self.api.base}/api/v1", timeout=10)
        res = self.client.post(
            "/auth/login",
            json={
                "username": self.api.env["EMO_BOOTSTRAP_ADMIN_USERNAME"],
                "password": self.api.env["EMO_BOOTSTRAP_ADMIN_PASSWORD"],
            },
        )
        res.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {res.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        res = self.client.request(method, path, **kwargs)
        assert res.status_code < 300, f"{method} {path}: {res.status_code} {res.text}"
        return res.json() if res.content else None

    def user(self, role: str, classroom_id: int | None) -> tuple[str, str]:
        name, password = f"{role}-{self.tag}", f"{role}-password-1"
        created = self.call(
            "POST", "/users", json={"username": name, "password": password, "role": role}
        )
        if classroom_id is not None:
            self.call(
                "PUT",
                f"/users/{created['id']}/grants/{classroom_id}",
                json={"per_student": role != "analyst"},
            )
        return name, password


@pytest.fixture
def admin(api_process: ApiProcess) -> Iterator[Admin]:
    tag = api_process.env["EMO_INGEST_CONSUMER"].split("-", 1)[1]
    client = Admin(api_process, tag)
    yield client
    client.client.close()


def probs_from(values: dict[str, float]) -> Probs:
    """A distribution with the given labels' values, the rest shared equally."""
    rest = (1.0 - sum(values.values())) / (len(LABELS) - len(values))
    return Probs(**{label: values.get(label, rest) for label in LABELS})


def frame_message(
    camera_id: str, seq: int, faces: dict[str | None, Probs], when: datetime | None = None
) -> FrameMessage:
    """What a worker publishes for one analysed frame (class mean of the smoothed scores)."""
    scores = [
        FaceScore(
            track_id=i,
            student=code,
            box=(10.0 + 60 * i, 20.0, 60.0 + 60 * i, 80.0),
            probs=p,
            smoothed=p,
            det_prob=0.98,
        )
        for i, (code, p) in enumerate(faces.items())
    ]
    mean = None
    if scores:
        mean = Probs.from_sequence(
            [sum(s.smoothed.as_list()[k] for s in scores) / len(scores) for k in range(6)]
        )
    return FrameMessage(
        camera_id=camera_id,
        worker_id="browser-test-worker",
        seq=seq,
        ts=when or datetime.now(UTC),
        t=seq * 0.5,
        faces=scores,
        aggregate=ClassAggregate(face_count=len(scores), mean=mean),
    )


class Publisher:
    """Publishes worker messages to the Redis stream every ``period_s`` in a thread."""

    def __init__(self, redis_url: str, make: Callable[[int], FrameMessage], period_s: float):
        self.client = redis.Redis.from_url(redis_url)
        self.make = make
        self.period_s = period_s
        self.stop_event = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            msg = self.make(self.sent)
            self.client.xadd(FRAMES_STREAM, {"data": msg.model_dump_json()})
            self.sent += 1
            self.stop_event.wait(self.period_s)

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.client.close()


def set_camera_status(redis_url: str, camera_id: str, state: str, reconnects: int = 0) -> None:
    """What a worker writes to CAMERA_STATUS_HASH (worker.coordination.write_status)."""
    import json

    client = redis.Redis.from_url(redis_url)
    status = {"state": state, "reconnects": reconnects, "worker_id": "browser-test-worker"}
    client.hset(CAMERA_STATUS_HASH, camera_id, json.dumps({**status, "updated": time.time()}))
    client.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium via chromedriver, downloads into ``tmp_path / 'downloads'``."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chrome-profile'}")
    options.add_argument("--window-size=1366,900")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str, *, settle_s: float = 1.2) -> Path:
    """Save a full-page PNG under artifacts/screenshots/ (gitignored) and return its path.

    ``settle_s`` lets charts finish a resize (Chart.js redraws on a ResizeObserver callback).
    """
    import base64

    time.sleep(settle_s)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path

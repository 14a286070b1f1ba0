"""``make run``: the whole system on one machine, in one process.

Builds the service (SQLite + in-process bus, or Postgres + Redis when their URLs are set),
serves the API and dashboard, creates a demo classroom and session through the public API, and
runs a worker on the given source (by default a demo clip with real faces). Ctrl-C stops all.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import threading
import time
from types import FrameType

import httpx
import uvicorn
from fastapi import FastAPI

from contract import CameraAssignment, FrameMessage
from launcher.demo import DemoSession, setup_demo
from launcher.democlip import make_demo_clip
from launcher.settings import LauncherSettings
from service.embedded import EmbeddedService, embedded_settings
from service.main import create_app
from service.settings import ServiceSettings
from worker.app import run as run_worker
from worker.settings import WorkerSettings

logger = logging.getLogger("launcher")


def admin_password(settings: LauncherSettings) -> str:
    """The first admin's password: from settings, or generated once and kept in var_dir."""
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    path = settings.var_dir / "admin-login.txt"
    if path.is_file():
        return path.read_text().split(":", 1)[1].strip()
    password = secrets.token_urlsafe(12)
    path.write_text(f"{settings.admin_username}: {password}\n")
    path.chmod(0o600)
    return password


def _serve(app: FastAPI, host: str, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the API did not start on {host}:{port} (port taken?)")
        time.sleep(0.1)
    return server, thread


def _source(settings: LauncherSettings) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    if settings.source:
        return settings.source, {}
    data = settings.data_dir if (settings.data_dir / "frames").is_dir() else None
    clip = make_demo_clip(settings.var_dir / "demo", data)
    logger.info("no --source given: demo clip %s (%s)", clip.video, clip.origin)
    return str(clip.video), clip.seats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launcher", description=__doc__)
    parser.add_argument("--source", help="file, webcam index, rtsp:// or http(s):// URL")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = LauncherSettings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    password = admin_password(settings)
    source, seats = _source(settings)
    common = {
        "host": settings.host,
        "port": settings.port,
        "bootstrap_admin_username": settings.admin_username,
        "bootstrap_admin_password": password,
        "history_cache_s": 0.0,
    }
    embedded: EmbeddedService | None = None
    if settings.redis_url is None:
        svc = embedded_settings(settings.var_dir / "emotions.db", **common)
        if settings.database_url:
            svc = svc.model_copy(update={"database_url": settings.database_url})
        embedded = EmbeddedService(svc)
        app = embedded.app
    else:
        svc = ServiceSettings.model_validate(
            {
                **common,
                "database_url": settings.database_url or ServiceSettings().database_url,
                "redis_url": settings.redis_url,
                "bus": "redis",
                "ingest_in_api": True,
            }
        )
        app = create_app(svc)
    server, api_thread = _serve(app, settings.host, settings.port)
    base = f"http://{settings.host}:{settings.port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        demo = setup_demo(
            client,
            username=settings.admin_username,
            password=password,
            source=source,
            seats=seats,
            fps=settings.fps,
        )
    _announce(base, settings.admin_username, password, demo)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        _run_worker(settings, embedded, demo, stop)
    finally:
        stop.set()
        server.should_exit = True
        api_thread.join(timeout=15)
    logger.info("stopped")
    return 0


def _run_worker(
    settings: LauncherSettings,
    embedded: EmbeddedService | None,
    demo: DemoSession,
    stop: threading.Event,
) -> None:
    if embedded is None:  # Redis mode: the worker takes assignments and publishes via Redis
        run_worker(WorkerSettings(redis_url=settings.redis_url, metrics_port=None), stop=stop)
        return
    assignment = embedded.control.assignments.get(demo.camera_id)
    if assignment is None:
        raise SystemExit(f"session {demo.session_id} assigned no camera {demo.camera_id}")
    worker_settings = WorkerSettings(
        redis_url=None,
        cameras=[CameraAssignment.model_validate(assignment.model_dump())],
        cameras_from_redis=False,
        metrics_port=None,
    )

    def sink(message: FrameMessage) -> None:
        embedded.ingest([message])

    run_worker(worker_settings, publisher=sink, stop=stop)


def _announce(base: str, username: str, password: str, demo: DemoSession) -> None:
    lines = [
        "",
        "  classroom-emotions is running",
        f"  dashboard:  {base}/dashboard/",
        f"  login:      {username} / {password}",
        f"  session:    {demo.session_id} (classroom {demo.classroom_id}, camera {demo.camera_id})",
        f"  history:    {base}/api/v1/sessions/{demo.session_id}/timeline?bucket=10s",
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)  # noqa: T201 - the person at the terminal needs this


if __name__ == "__main__":
    raise SystemExit(main())

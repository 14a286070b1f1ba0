"""docker-compose.yml validates, and the commands its services run work on this machine.

No Docker engine runs here, so each service's command is started by hand with the environment
compose would give it (hosts ``postgres``/``redis`` mapped to the real local servers).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from contract.keys import heartbeat_key
from launcher.settings import REPO_ROOT
from tests.net import free_port

COMPOSE = shutil.which("docker-compose")


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if COMPOSE is None:
        pytest.fail("docker-compose (Debian package) is not installed; run .ci/system-deps")
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO_ROOT / "docker-compose.yml", work / "docker-compose.yml")
    shutil.copy(REPO_ROOT / ".env.example", work / ".env")
    subprocess.run([COMPOSE, "config", "-q"], cwd=work, check=True)
    out = subprocess.run([COMPOSE, "config"], cwd=work, check=True, capture_output=True, text=True)
    return dict(yaml.safe_load(out.stdout))


def _env(service: dict[str, Any], pg_url: str, redis_url: str) -> dict[str, str]:
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    for key, value in list(env.items()):
        if value.startswith("postgresql"):
            env[key] = pg_url.replace("postgresql://", "postgresql+psycopg://")
        elif value.startswith("redis://"):
            env[key] = redis_url
    # paths in the image are /app/...; here they are the checkout
    env = {k: v for k, v in env.items() if not v.startswith(("var/", "runs", "models/", "../"))}
    return {"PATH": str(Path(sys.executable).parent), "HOME": "/tmp", **env}


def test_compose_has_the_services_a_school_needs(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "worker-cpu", "trainer"} <= set(
        services
    )
    assert "--appendonly" in services["redis"]["command"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["api"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["trainer"]["profiles"] == ["trainer"]


@pytest.mark.slow
def test_compose_commands_run_against_real_postgres_and_redis(
    compose_config: dict[str, Any], own_pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    services = compose_config["services"]
    migrate = services["migrate"]
    done = subprocess.run(
        migrate["command"],
        check=False,
        cwd=REPO_ROOT,
        env=_env(migrate, own_pg_url, redis_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    api, worker = services["api"], services["worker-cpu"]
    port = free_port()
    api_cmd = [*api["command"]]
    api_cmd[api_cmd.index("--port") + 1] = str(port)
    api_cmd[api_cmd.index("--host") + 1] = "127.0.0.1"
    worker_env = _env(worker, own_pg_url, redis_url) | {"EMO_WORKER_METRICS_PORT": "0"}
    procs = [
        subprocess.Popen(api_cmd, cwd=REPO_ROOT, env=_env(api, own_pg_url, redis_url)),
        subprocess.Popen(worker["command"], cwd=REPO_ROOT, env=worker_env),
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        deadline, healthy, beating = time.monotonic() + 90, False, False
        while time.monotonic() < deadline and not (healthy and beating):
            time.sleep(1)
            assert all(p.poll() is None for p in procs), "a compose service command exited"
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                healthy = False
            beating = bool(client.keys(heartbeat_key("*")))
        assert healthy, "api never reported healthy"
        assert beating, "worker never wrote its heartbeat to Redis"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        client.close()
    # uvicorn re-raises the SIGTERM it handled after a clean shutdown; the worker exits 0
    assert procs[0].returncode in (0, -signal.SIGTERM)
    assert procs[1].returncode == 0

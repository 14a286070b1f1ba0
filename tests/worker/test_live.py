"""The live worker (`worker.app.run`) on real sources, publishing to a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis

from contract import CameraAssignment, FrameMessage
from contract.keys import CAMERA_STATUS_HASH, FRAMES_STREAM, heartbeat_key, lease_key
from tests.worker.conftest import Clip, SilentServer
from tests.worker.helpers import DirectModel, hash_json, read_all_frames, read_jsonl, stream_data
from worker.analyse import main as analyse_main
from worker.app import run
from worker.settings import WorkerSettings

pytestmark = pytest.mark.slow


@contextmanager
def running(
    settings: WorkerSettings, publisher: Callable[[FrameMessage], None] | None = None
) -> Iterator[threading.Event]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(settings, publisher=publisher, stop=stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "worker did not stop within 30 s"
    assert not errors, errors


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_live_worker_publishes_what_analyse_writes(
    slow_clip: Clip, model_path: Path, tmp_path: Path
) -> None:
    """One shared pipeline: the live worker on a file equals `analyse` on the same file."""
    out = tmp_path / "analyse.jsonl"
    code = analyse_main(
        [
            "--source",
            str(slow_clip.path),
            "--out",
            str(out),
            "--fps",
            "1",
            "--model",
            str(model_path),
            "--camera-id",
            "room1",
            "--quiet",
        ]
    )
    assert code == 0
    expected = read_jsonl(out)

    got: list[FrameMessage] = []
    # The file plays at its native 1 fps; ticking at 8 fps takes every frame exactly once.
    settings = WorkerSettings(
        worker_id="live-test",
        redis_url=None,
        cameras_from_redis=False,
        metrics_port=None,
        model_path=model_path,
        device="cpu",
        loop_files=False,
        cameras=[CameraAssignment(camera_id="room1", url=str(slow_clip.path), fps=8.0)],
    )
    with running(settings, publisher=got.append):
        wait_for(lambda: len(got) >= slow_clip.frames, 60, f"{slow_clip.frames} live messages")
        time.sleep(1.5)  # nothing more may arrive: the file has ended
    assert len(got) == len(expected) == slow_clip.frames
    for live, offline in zip(got, expected, strict=True):
        exclude = {"ts", "worker_id"}
        assert live.model_dump(exclude=exclude) == offline.model_dump(exclude=exclude)


def test_redis_publish_status_and_dead_camera(
    clip: Clip, model_path: Path, redis_url: str, silent_server: SilentServer
) -> None:
    """A camera that never answers does not slow a healthy one; messages, status, heartbeat
    and leases go through a real Redis; published scores equal the model on the same crops."""
    dead_url = f"http://127.0.0.1:{silent_server.port}/never.mjpg"
    settings = WorkerSettings(
        worker_id="w-redis",
        redis_url=redis_url,
        cameras_from_redis=True,
        metrics_port=None,
        model_path=model_path,
        device="cpu",
        open_timeout_s=1.0,
        backoff_max_s=2.0,
        cameras=[
            CameraAssignment(camera_id="healthy", url=str(clip.path), fps=2.0),
            CameraAssignment(camera_id="dead", url=dead_url, fps=2.0),
        ],
    )
    client = redis.Redis.from_url(redis_url)
    with running(settings):
        wait_for(lambda: client.xlen(FRAMES_STREAM) >= 3, 60, "first messages")
        n0, t0 = client.xlen(FRAMES_STREAM), time.monotonic()
        time.sleep(4.0)
        rate = (client.xlen(FRAMES_STREAM) - n0) / (time.monotonic() - t0)
        assert rate >= 1.2, f"healthy camera published {rate:.2f} msg/s (2 fps wanted)"
        status = hash_json(client, CAMERA_STATUS_HASH)
        assert status["healthy"]["state"] == "running"
        assert status["dead"]["state"] in ("connecting", "reconnecting", "failed")
        assert status["dead"]["last_error"] and dead_url in status["dead"]["last_error"]
        assert client.exists(heartbeat_key("w-redis"))
        assert client.get(lease_key("healthy")) == b"w-redis"
    # graceful stop released the leases and the heartbeat
    assert not client.exists(lease_key("healthy")) and not client.exists(heartbeat_key("w-redis"))

    messages = [FrameMessage.model_validate(d) for d in stream_data(client)]
    assert {m.camera_id for m in messages} == {"healthy"}
    frames = read_all_frames(clip.path)
    model = DirectModel(model_path)
    for m in messages[:3]:
        image = frames[round(m.t * clip.fps) % clip.frames]
        expected = model.predict(image, [f.box for f in m.faces])
        got = np.array([f.probs.as_list() for f in m.faces])
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_python_m_worker_bad_settings_and_missing_model(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMO_WORKER_")}
    bad = subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**env, "EMO_WORKER_REDIS_URL": "", "EMO_WORKER_CAMERAS": "not json"},
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and '"cameras"' in bad.stderr and "EMO_WORKER_" in bad.stderr
    missing = tmp_path / "absent.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **env,
            "EMO_WORKER_MODEL_PATH": str(missing),
            "EMO_WORKER_METRICS_PORT": "0",
            "EMO_WORKER_CAMERAS": '[{"camera_id": "c", "url": "0"}]',
            "EMO_WORKER_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        check=False,
    )
    assert proc.returncode == 1
    assert f"model file {missing} not found" in proc.stderr

"""Worker test fixtures: the shipped model, a real gallery-view clip, real stream servers.

Clips are built once per test session under a pytest tmp dir from ../shared/data/frames
(never written into the repository). The model is the shipped
models/weights/learning_emotion.onnx (override with EMO_WORKER_TEST_MODEL).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.net import free_port
from worker.gallery import Gallery, Tile, build_gallery, frame_rows, pick_rows
from worker.settings import DEFAULT_MODEL

CLIP_FPS = 2.0
CLIP_FRAMES = 12
FACE_LABELS = ("frowning", "neutralface", "tilt", "yawning")


@dataclass(frozen=True)
class Clip:
    """A generated gallery-view video and what is in it."""

    path: Path
    fps: float
    frames: int
    tiles: tuple[Tile, ...]
    size: tuple[int, int]  # (w, h)


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The shipped model (skips with a reason if it has not been exported yet)."""
    path = Path(os.environ.get("EMO_WORKER_TEST_MODEL", DEFAULT_MODEL))
    if not path.is_file() or not path.with_suffix(".json").is_file():
        pytest.skip(f"model {path} (+ .json sidecar) not found; run the export job first")
    return path


def _frames(gallery: Gallery, count: int) -> Iterator[np.ndarray]:
    """The gallery drifting slowly right (2 px per frame), so boxes move like people do."""
    for i in range(count):
        yield np.roll(gallery.image, 2 * i, axis=1)


@pytest.fixture(scope="session")
def gallery(data_dir: Path) -> Gallery:
    """3 x 2 tiles of six different real people (face-visible labels), 960 x 480."""
    picks = pick_rows(frame_rows(data_dir), 6, FACE_LABELS)
    return build_gallery(data_dir, cols=3, rows=2, tile_w=320, tile_h=240, picks=picks)


@pytest.fixture(scope="session")
def clip(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """MJPG AVI of the drifting gallery, 12 frames at 2 fps."""
    path = tmp_path_factory.mktemp("clips") / "gallery.avi"
    h, w = gallery.image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), CLIP_FPS, (w, h))
    for image in _frames(gallery, CLIP_FRAMES):
        writer.write(image)
    writer.release()
    return Clip(path, CLIP_FPS, CLIP_FRAMES, gallery.tiles, (w, h))


@pytest.fixture(scope="session")
def slow_clip(gallery: Gallery, tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """The first 8 frames of the clip at 1 fps: a live worker on a loaded CI machine still
    analyses every frame of it, so live and offline runs see the same frames."""
    path = tmp_path_factory.mktemp("clips") / "gallery-1fps.avi"
    h, w = gallery.image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 1.0, (w, h))
    for image in _frames(gallery, 8):
        writer.write(image)
    writer.release()
    return Clip(path, 1.0, 8, gallery.tiles, (w, h))


@pytest.fixture(scope="session")
def h264_clip(clip: Clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same clip as H.264 MP4 (Debian ffmpeg, libx264) for the RTSP server."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (see .ci/system-deps)")
    out = tmp_path_factory.mktemp("clips") / "gallery.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip.path),
            "-r",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


class MjpegServer:
    """A real HTTP MJPEG server (multipart/x-mixed-replace) on loopback, in a thread."""

    def __init__(self, frames: list[np.ndarray], fps: float = 5.0) -> None:
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.fps = fps
        self.corrupt_next = threading.Event()
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not server.closed:
                        data = server.jpegs[i % len(server.jpegs)]
                        if server.corrupt_next.is_set():
                            server.corrupt_next.clear()
                            data = data[:200] + bytes(range(256)) * 8  # a broken JPEG
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        server.sent += 1
                        i += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.closed = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed = True
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg_server(gallery: Gallery) -> Iterator[MjpegServer]:
    server = MjpegServer(list(_frames(gallery, 4)))
    yield server
    server.close()


RTSP_SCRIPT = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, path = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( multifilesrc location={path} loop=true ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


class RtspServer:
    """GStreamer's RTSP server (Debian python3 + gi) serving an H.264 file on loopback."""

    def __init__(self, mp4: Path, workdir: Path) -> None:
        self.mp4, self.port = mp4, free_port()
        self.script = workdir / "rtsp_server.py"
        self.script.write_text(RTSP_SCRIPT)
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(self.script), str(self.port), str(self.mp4)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready" not in line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"RTSP server did not start: {line} {err}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def rtsp_server(h264_clip: Path, tmp_path: Path) -> Iterator[RtspServer]:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("Debian python3 with gi/GstRtspServer not installed (see .ci/system-deps)")
    probe = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("gir1.2-gst-rtsp-server-1.0 / python3-gi missing (see .ci/system-deps)")
    server = RtspServer(h264_clip, tmp_path)
    server.start()
    yield server
    server.kill()


class SilentServer:
    """A TCP port that accepts connections and never answers (a hung camera)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()

"""`python -m worker.analyse` on a real gallery clip with the shipped model, and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis

from contract import LABELS, FrameMessage
from tests.worker.conftest import Clip, SilentServer
from tests.worker.helpers import DirectModel, read_all_frames, read_jsonl, stream_data, tile_of
from worker.analyse import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analysed(clip: Clip, model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("analyse") / "scores.jsonl"
    code = main(
        [
            "--source",
            str(clip.path),
            "--out",
            str(out),
            "--fps",
            "2",
            "--model",
            str(model_path),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0
    return out


def test_every_tile_found_with_stable_tracks(analysed: Path, clip: Clip) -> None:
    messages = read_jsonl(analysed)
    assert len(messages) == clip.frames  # fps 2 on a 2 fps clip: every frame, in video time
    assert [m.t for m in messages] == pytest.approx([i / clip.fps for i in range(clip.frames)])
    found: dict[int, int] = defaultdict(int)
    tracks: dict[int, set[int]] = defaultdict(set)
    for i, m in enumerate(messages):
        assert m.aggregate.face_count == len(m.faces)
        for face in m.faces:
            where = tile_of(face.box, i, clip.size[0], clip.tiles)
            assert where is not None, f"face at {face.box} in frame {i} is in no tile"
            found[where] += 1
            tracks[where].add(face.track_id)
    for tile in clip.tiles:
        assert found[tile.index] >= 0.95 * clip.frames, f"tile {tile} found in {found[tile.index]}"
        assert len(tracks[tile.index]) == 1, f"tile {tile.index} had tracks {tracks[tile.index]}"
    all_ids = [next(iter(v)) for v in tracks.values()]
    assert len(set(all_ids)) == len(clip.tiles)  # one distinct id per person


def test_scores_equal_the_model_on_the_same_crops(
    analysed: Path, clip: Clip, model_path: Path
) -> None:
    messages = read_jsonl(analysed)
    frames = read_all_frames(clip.path)
    model = DirectModel(model_path)
    for i, m in enumerate(messages):
        boxes = [f.box for f in m.faces]
        expected = model.predict(frames[i], boxes)
        got = np.array([f.probs.as_list() for f in m.faces]).reshape(-1, len(LABELS))
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=f"frame {i}")
        # dominant label per tile agrees with the model's own prediction on the same crop
        for face, row in zip(m.faces, expected, strict=True):
            assert face.probs.dominant() == LABELS[int(np.argmax(row))]
        # smoothing: the first sighting equals the raw scores; mean aggregate of smoothed
        if i == 0:
            for f in m.faces:
                assert f.smoothed.as_list() == pytest.approx(f.probs.as_list())
        mean = np.mean([f.smoothed.as_list() for f in m.faces], axis=0)
        assert m.aggregate.mean is not None
        np.testing.assert_allclose(m.aggregate.mean.as_list(), mean, atol=1e-9)


def test_seat_map_gives_student_codes(clip: Clip, model_path: Path, tmp_path: Path) -> None:
    tile = clip.tiles[0]
    seats = tmp_path / "seats.json"
    x1, y1, x2, y2 = tile.x, tile.y, tile.x + tile.w, tile.y + tile.h
    seats.write_text(json.dumps({"S01": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]}))
    out = tmp_path / "seated.jsonl"
    code = main(
        [
            "--source",
            str(clip.path),
            "--out",
            str(out),
            "--seat-map",
            str(seats),
            "--model",
            str(model_path),
            "--seconds",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    messages = read_jsonl(out)
    assert len(messages) == 4  # 2 video seconds at 2 fps
    for m in messages:
        students = [f.student for f in m.faces if f.student is not None]
        assert students == ["S01"]


def test_missing_file(tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--source",
            str(tmp_path / "nope.mp4"),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(model_path),
            "--quiet",
        ]
    )
    assert code == 2
    assert "nope.mp4 not found" in capsys.readouterr().err


def test_unreadable_file(
    tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    code = main(
        [
            "--source",
            str(bad),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(model_path),
            "--quiet",
        ]
    )
    assert code == 2
    assert "could not be opened" in capsys.readouterr().err


def test_missing_model(clip: Clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--source",
            str(clip.path),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(tmp_path / "none.onnx"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "none.onnx not found" in capsys.readouterr().err


def test_truncated_file_writes_what_was_analysed(
    clip: Clip, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "cut.jsonl"
    code = main(["--source", str(cut), "--out", str(out), "--model", str(model_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "truncated or damaged" in err
    written = read_jsonl(out)
    assert 2 <= len(written) < clip.frames
    assert [m.seq for m in written] == list(range(len(written)))


def test_url_that_never_answers(
    silent_server: SilentServer, model_path: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{silent_server.port}/stream.mjpg"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.analyse",
            "--source",
            url,
            "--out",
            str(tmp_path / "o.jsonl"),
            "--model",
            str(model_path),
            "--open-timeout",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert url in proc.stderr and "not answering" in proc.stderr


def test_publish_sends_the_same_messages_to_redis(
    clip: Clip, model_path: Path, redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "pub.jsonl"
    code = main(
        [
            "--source",
            str(clip.path),
            "--out",
            str(out),
            "--model",
            str(model_path),
            "--seconds",
            "2",
            "--publish",
            "--session",
            "lesson-7",
            "--redis-url",
            redis_url,
            "--start",
            "2026-01-05T09:00:00+00:00",
            "--quiet",
        ]
    )
    assert code == 0
    written = read_jsonl(out)
    published = [
        FrameMessage.model_validate(d) for d in stream_data(redis.Redis.from_url(redis_url))
    ]
    assert published == written and len(written) == 4
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    for m in published:
        assert m.session_id == "lesson-7"
        assert m.ts == start + timedelta(seconds=m.t)


def test_publish_needs_a_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--source", "x.mp4", "--out", str(tmp_path / "o.jsonl"), "--publish"])
    assert exc.value.code == 2
    assert "--publish needs --session" in capsys.readouterr().err

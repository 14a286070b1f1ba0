"""Small real-data checks of the individual stages (no model, no video)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from contract import CameraAssignment
from worker.errors import ConfigError
from worker.geometry import crop_square, iou, square
from worker.seats import SeatMap
from worker.settings import WorkerSettings
from worker.smooth import EmaSmoother
from worker.stream import Backoff
from worker.stream.video_time import video_time_frames
from worker.track import IouTracker
from worker.types import FaceBox, TrackedFace


def box(x: float, y: float, side: float = 40.0, prob: float = 0.99) -> FaceBox:
    return FaceBox(x, y, x + side, y + side, prob)


def test_square_crop_pads_black_outside_the_frame() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    sq = square(box(-10, -10, 40), 1.3)  # centred on (10, 10), side 52
    assert sq == pytest.approx((-16.0, -16.0, 36.0, 36.0))
    crop = crop_square(image, sq, 52)
    assert crop.shape == (52, 52, 3)
    assert crop[0, 0].tolist() == [0, 0, 0] and crop[-1, -1].tolist() == [200, 200, 200]


def test_iou() -> None:
    assert iou(box(0, 0), box(0, 0)) == pytest.approx(1.0)
    assert iou(box(0, 0), box(100, 100)) == 0.0
    assert iou(box(0, 0), box(20, 0)) == pytest.approx(800 / 2400)


def test_tracker_keeps_ids_through_motion_and_a_short_occlusion() -> None:
    tracker = IouTracker(iou_min=0.3, max_age_s=2.0)
    first = tracker.update([box(0, 0), box(200, 0)], t=0.0)
    assert [f.track_id for f in first] == [0, 1]
    moved = tracker.update([box(205, 2), box(4, 1)], t=0.5)  # order swapped, both moved
    assert [f.track_id for f in moved] == [1, 0]
    hidden = tracker.update([box(8, 2)], t=1.0)  # face 1 occluded
    assert [f.track_id for f in hidden] == [0]
    back = tracker.update([box(10, 2), box(206, 3)], t=2.0)
    assert [f.track_id for f in back] == [0, 1]
    late = tracker.update([box(10, 2)], t=2.5)
    again = tracker.update([box(10, 2), box(206, 3)], t=4.2)  # gone 2.2 s > max age: new id
    assert [f.track_id for f in late] == [0] and [f.track_id for f in again] == [0, 2]


def test_seat_map_assigns_one_face_per_seat(tmp_path: Path) -> None:
    path = tmp_path / "seats.json"
    path.write_text(
        json.dumps(
            {"A1": [[0, 0], [100, 0], [100, 100], [0, 100]], "B1": [[100, 0], [200, 0], [150, 100]]}
        )
    )
    seats = SeatMap.load(path)
    faces = [
        TrackedFace(0, box(10, 10, prob=0.95)),
        TrackedFace(1, box(30, 30, prob=0.99)),
        TrackedFace(2, box(130, 10)),
        TrackedFace(3, box(300, 300)),
    ]
    assert [f.student for f in seats.assign(faces)] == [None, "A1", "B1", None]
    bad = tmp_path / "bad.json"
    bad.write_text('{"A1": [[0, 0], [1, 1]]}')
    with pytest.raises(ConfigError, match="A1"):
        SeatMap.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        SeatMap.load(tmp_path / "none.json")


def test_ema_time_constant() -> None:
    ema = EmaSmoother(tau_s=1.0)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert ema.update("s", a, 0.0).tolist() == [1.0, 0.0]
    after = ema.update("s", b, 1.0)  # one time constant: 1 - 1/e of the way
    assert after[1] == pytest.approx(1 - np.exp(-1))
    assert EmaSmoother(0.0).update("s", b, 0.0).tolist() == [0.0, 1.0]


def test_backoff_is_exponential_with_a_cap() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0)
    assert [b.delay(i) for i in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_video_time_sampling() -> None:
    taken, due = [], 0.0
    for i in range(30):  # 10 fps video sampled at 2 fps
        take, due = video_time_frames(i, i / 10, 2.0, due)
        if take:
            taken.append(i)
    assert taken == [0, 5, 10, 15, 20, 25]


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="duplicate camera ids"):
        WorkerSettings(cameras=[CameraAssignment(camera_id="a", url="0")] * 2)
    with pytest.raises(ValidationError, match="no cameras"):
        WorkerSettings(redis_url=None)

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contract import LABELS, ClassAggregate, FaceScore, FrameMessage, Probs


def _probs(i: int) -> Probs:
    values = [0.0] * len(LABELS)
    values[i] = 1.0
    return Probs.from_sequence(values)


def test_frame_message_round_trips_through_json() -> None:
    face = FaceScore(
        track_id=3, box=(1, 2, 30, 40), probs=_probs(1), smoothed=_probs(2), det_prob=0.99
    )
    msg = FrameMessage(
        camera_id="cam-1",
        worker_id="w1",
        seq=7,
        ts=datetime(2026, 11, 28, tzinfo=UTC),
        t=3.5,
        faces=[face],
        aggregate=ClassAggregate(face_count=1, mean=_probs(2)),
    )
    again = FrameMessage.model_validate_json(msg.model_dump_json())
    assert again == msg
    assert again.faces[0].smoothed.dominant() == "thinking"
    assert again.message_key == msg.message_key


def test_probs_reject_wrong_length_and_range() -> None:
    with pytest.raises(ValueError, match="expected 6"):
        Probs.from_sequence([0.5, 0.5])
    with pytest.raises(ValidationError):
        Probs.from_sequence([1.5, 0, 0, 0, 0, 0])


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        FrameMessage(
            camera_id="c",
            worker_id="w",
            seq=0,
            ts=datetime(2026, 1, 1),
            t=0.0,
            aggregate=ClassAggregate(face_count=0),
        )

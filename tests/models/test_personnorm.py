"""Person-specific normalisation (``models.personnorm``) with the shipped model on real crops."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from models.errors import DataError
from models.evaluate import evaluate
from models.personnorm import main, mix_stress_report, normalise, psn_report
from tests.models.conftest import in_shipped_framing, write_manifest
from worker.settings import DEFAULT_MODEL

pytestmark = pytest.mark.slow

MIN_FACES = 10


@pytest.fixture(scope="module")
def people(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real crops in the shipped model's framing: 30 of webcam person 2 (train) and 30 of
    person 1 (val) with every label they show, plus 12 of one DAiSEE person (val) and 5 of
    another (below MIN_FACES)."""
    with (data_dir / "learning-emotions" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = []
    for subject, n in (("xhy2", 30), ("xhy1", 30), ("daisee110002", 12), ("daisee110014", 5)):
        mine = [r for r in rows if r["subject"] == subject]
        picked += mine[:: max(1, len(mine) // n)][:n]
    folder = write_manifest(tmp_path_factory.mktemp("psn") / "people", picked, data_dir)
    return in_shipped_framing(folder, tmp_path_factory.mktemp("psn-framed") / "people")


@pytest.fixture(scope="module")
def model() -> Path:
    """The shipped model."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"shipped model {DEFAULT_MODEL} not found")
    return DEFAULT_MODEL


def score_webcam_reference(
    people: Path, model: Path, out: Path, npz: Path, only_source: str | None = None
) -> dict:
    """``psn_report`` on the val split with the webcam training person as the reference."""
    return psn_report(
        people,
        "val",
        "train",
        onnx=model,
        reference_source="webcam-class",
        only_source=only_source,
        min_faces=MIN_FACES,
        out=out,
        save_scores=npz,
    )


def test_every_eligible_person_is_moved_onto_the_reference(
    people: Path, model: Path, tmp_path: Path
) -> None:
    out, npz = tmp_path / "r.json", tmp_path / "s.npz"
    rep = score_webcam_reference(people, model, out, npz)
    assert json.loads(out.read_text())["macro_f1"] == rep["macro_f1"]
    assert rep["psn"]["reference_persons"] == ["webcam-class/xhy2"]
    assert sorted(rep["psn"]["persons"]) == ["daisee/daisee110002", "webcam-class/xhy1"]
    ref = np.array(list(rep["psn"]["reference"].values()))
    with np.load(npz) as z:
        scores, persons = z["scores"], z["persons"]
    normed, _ = normalise(scores, persons, ref, MIN_FACES)
    for key in rep["psn"]["persons"]:
        np.testing.assert_allclose(np.median(normed[persons == key], axis=0), ref, atol=1e-4)
    small = persons == "daisee/daisee110014"  # 5 faces: left as they were
    np.testing.assert_array_equal(normed[small], scores[small])
    plain = evaluate(model, people, "val", tmp_path / "plain.json")  # the same model, no PSN
    assert rep["plain"]["confusion_matrix"] == plain["confusion_matrix"]


def test_only_source_limits_who_is_moved(people: Path, model: Path, tmp_path: Path) -> None:
    npz = tmp_path / "s.npz"
    rep = score_webcam_reference(people, model, tmp_path / "r.json", npz, "webcam-class")
    assert list(rep["psn"]["persons"]) == ["webcam-class/xhy1"]
    daisee = rep["per_source"]["daisee"]["macro_f1"]  # not moved: scored as without PSN
    assert daisee == rep["plain"]["per_source_macro_f1"]["daisee"]
    stress = mix_stress_report(
        npz,
        "webcam-class/xhy1",
        reference_source="webcam-class",
        min_faces=MIN_FACES,
        draws=3,
        out=tmp_path / "stress.json",
    )
    assert len(stress["draws"]) == 3 and 0.0 <= stress["mix_matched_macro_f1_mean"] <= 1.0
    assert abs(sum(stress["proportions"].values()) - 1.0) < 1e-3


def test_bad_input_names_what_is_wrong(
    people: Path, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    with pytest.raises(DataError, match="exactly one model"):
        psn_report(people, "val", "train", out=out)
    with pytest.raises(DataError, match="min-faces must be >= 2"):
        psn_report(people, "val", "train", onnx=model, min_faces=1, out=out)
    with pytest.raises(DataError, match="source 'nope' has no row"):
        psn_report(people, "val", "train", onnx=model, reference_source="nope", out=out)
    with pytest.raises(DataError, match="no reference person"):
        psn_report(people, "val", "train", onnx=model, min_faces=500, out=out)
    assert (
        main(
            [
                "--onnx",
                str(model),
                "--data",
                str(tmp_path / "absent"),
                "--reference-split",
                "train",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "manifest" in capsys.readouterr().err

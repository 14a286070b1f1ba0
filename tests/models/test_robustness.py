"""Camera-condition robustness report of the shipped model on real crops."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data import load_images, load_manifest
from models.evaluate import evaluate
from models.robustness import CAMERA, CONDITIONS, FRAMING_CONDITIONS, main, robustness
from tests.models.conftest import SHIPPED


def _sharpness(im: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_each_condition_changes_what_it_says(tiny_data: Path) -> None:
    crops = load_images(load_manifest(tiny_data, "val"), 160)
    for name, change in CONDITIONS.items():
        out = np.stack([change(im) for im in crops])
        assert out.shape == crops.shape and out.dtype == np.uint8, name
    mean = crops.mean()
    assert np.stack([CONDITIONS["exposure x0.6"](im) for im in crops]).mean() < 0.7 * mean
    assert np.stack([CONDITIONS["gamma 0.6"](im) for im in crops]).mean() > mean
    assert np.stack([CONDITIONS["contrast x0.5"](im) for im in crops]).std() < 0.6 * crops.std()
    for name in ("blur sigma 2", "resolution 24 px"):
        changed = [_sharpness(CONDITIONS[name](im)) for im in crops]
        assert np.mean(changed) < 0.5 * np.mean([_sharpness(im) for im in crops]), name
    assert np.array_equal(np.stack([CONDITIONS["clean"](im) for im in crops]), crops)
    # zooms change only the face's size in the crop: x1.2 is the enlarged central window,
    # x0.85 keeps the whole crop, shrunk, inside a repeated border
    im = crops[0]
    w = round(160 / 1.2)
    o = (160 - w) // 2
    centre = cv2.resize(im[o : o + w, o : o + w], (160, 160), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(CONDITIONS["zoom x1.2"](im), centre)
    small = CONDITIONS["zoom x0.85"](im)
    inner = cv2.resize(im, (136, 136), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small[12:148, 12:148].astype(float) - inner).mean() < 4.0


@pytest.mark.slow
def test_report_of_the_shipped_model_starts_from_the_plain_evaluation(
    shipped_framed: Path, tmp_path: Path
) -> None:
    doc = robustness(SHIPPED, shipped_framed, "test", tmp_path / "rob.json")
    plain = evaluate(SHIPPED, shipped_framed, "test", tmp_path / "eval.json")
    clean = doc["conditions"]["clean"]
    assert clean["macro_f1"] == pytest.approx(plain["macro_f1"])  # same resize path
    assert clean["agreement"] == 1.0 and doc["n"] == plain["n"]
    assert set(doc["conditions"]) == set(CONDITIONS)
    for name, res in doc["conditions"].items():
        assert 0.0 <= res["macro_f1"] <= 1.0 and 0.0 <= res["agreement"] <= 1.0, name
        assert set(res["per_source_macro_f1"]) == set(plain["per_source"]), name
    assert json.loads((tmp_path / "rob.json").read_text()) == doc
    for name, res in doc["conditions"].items():
        assert sum(res["predicted_share"].values()) == pytest.approx(1.0), name
    camera = [doc["conditions"][c]["macro_f1"] for c in CAMERA]
    assert len(camera) == 9 and doc["mean_macro_f1_camera"] == pytest.approx(np.mean(camera))
    assert doc["mean_macro_f1_framing"] == pytest.approx(
        np.mean([doc["conditions"][c]["macro_f1"] for c in FRAMING_CONDITIONS])
    )


def test_missing_model_is_one_clear_error(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--onnx", str(tmp_path / "none.onnx"), "--data", str(tiny_data)]
    assert main([*argv, "--out", str(tmp_path / "r.json")]) == 2
    assert "none.onnx not found" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()

"""The ONNX model stage: providers, batching, and clear start-up errors for bad model files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from worker.errors import ModelError
from worker.infer import OnnxClassifier, choose_providers
from worker.types import FaceBox


def test_provider_choice() -> None:
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == (
        "CUDAExecutionProvider"
    )
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def test_batch_equals_single_faces(model_path: Path) -> None:
    clf = OnnxClassifier(model_path, "cpu", max_batch=3)
    assert clf.providers == ["CPUExecutionProvider"]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = [FaceBox(10 + 30 * i, 20, 60 + 30 * i, 80, 0.99) for i in range(7)]
    batch = clf.classify(clf.crops(image, boxes))  # split into chunks of 3
    assert batch.shape == (7, 6)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-4)
    single = np.concatenate([clf.classify(clf.crops(image, [b])) for b in boxes])
    np.testing.assert_allclose(batch, single, atol=2e-5)
    assert clf.classify(clf.crops(image, [])).shape == (0, 6)


def test_mismatched_sidecar_names_the_file(model_path: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(model_path, onnx)
    sidecar = json.loads(model_path.with_suffix(".json").read_text())
    sidecar["onnx_file"] = "m.onnx"
    sidecar["onnx_sha256"] = "0" * 64
    onnx.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match=r"m\.onnx does not match sidecar"):
        OnnxClassifier(onnx, "cpu")
    onnx.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match=r"m\.json not found"):
        OnnxClassifier(onnx, "cpu")


def test_wrong_input_size_in_sidecar(model_path: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(model_path, onnx)
    sidecar = json.loads(model_path.with_suffix(".json").read_text())
    sidecar["onnx_file"] = "m.onnx"
    sidecar["input_size"] = int(sidecar["input_size"]) + 32
    onnx.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match="does not match sidecar"):
        OnnxClassifier(onnx, "cpu")


def test_saliency_outside_the_graph_is_refused(model_path: Path, tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    shutil.copy(model_path, onnx)
    sidecar = json.loads(model_path.with_suffix(".json").read_text())
    sidecar["onnx_file"] = "m.onnx"
    sidecar["saliency"] = {"method": "sun", "in_graph": False, "params": {}}
    onnx.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match="saliency outside the graph"):
        OnnxClassifier(onnx, "cpu")

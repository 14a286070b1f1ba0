"""Export parity on real crops, the sidecar, and the evaluate CLI on a tiny manifest."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.labels import LABELS
from contract.sidecar import ModelSidecar
from models.checkpoint import model_from_checkpoint
from models.evaluate import main as evaluate_main
from models.export import (
    WithSoftmax,
    check_parity,
    export,
    parity_inputs,
    store_weights_fp16,
)
from models.train import train
from tests.models.conftest import TINY_CFG

pytestmark = pytest.mark.slow

REPORT_KEYS = {
    "accuracy",
    "mean_class_accuracy",
    "macro_f1",
    "per_class",
    "per_source",
    "confusion_matrix",
    "n",
}


def test_export_matches_pytorch_on_real_crops_with_dynamic_batch(tiny_run, exported):
    model, _ = model_from_checkpoint(tiny_run / "best.pt")
    x = parity_inputs(96, (0.5,) * 3, (0.25,) * 3, 5)  # a batch size not used at export
    sess = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = sess.run(["probs"], {"image": x})[0]
    with torch.no_grad():
        ref = WithSoftmax(model)(torch.from_numpy(x)).numpy()
    assert got.shape == (5, len(LABELS))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - ref).max() <= 1e-4


def test_conv_stem_run_exports_within_parity(tiny_data, tiny_fer, tmp_path):
    cfg = replace(TINY_CFG, stem="conv", data_dir=str(tiny_data), fer_dir=str(tiny_fer))
    best = train(cfg, tmp_path / "run")  # real steps: BatchNorm running stats have moved
    onnx_path = tmp_path / "conv.onnx"
    side = export(best, onnx_path, n_parity=8)  # raises ExportError above 1e-4
    assert side.model["stem"] == "conv"
    model, _ = model_from_checkpoint(best)
    x = parity_inputs(96, (0.5,) * 3, (0.25,) * 3, 3)  # a batch size not used at export
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = WithSoftmax(model)(torch.from_numpy(x)).numpy()
    assert np.abs(sess.run(["probs"], {"image": x})[0] - ref).max() <= 1e-4


def test_fp16_weight_storage_halves_the_file_and_keeps_parity(tiny_run, exported, tmp_path):
    half = tmp_path / "half.onnx"
    shutil.copy(exported, half)
    assert store_weights_fp16(half) > 50
    assert half.stat().st_size < 0.6 * exported.stat().st_size
    model, _ = model_from_checkpoint(tiny_run / "best.pt")
    x = parity_inputs(96, (0.5,) * 3, (0.25,) * 3, 8)
    assert check_parity(model, half, x, tol=5e-3) <= 5e-3


def test_sidecar_describes_the_graph(exported):
    side = ModelSidecar.load(exported.with_suffix(".json"))  # verifies the ONNX hash
    assert side.input_name == "image" and side.output_name == "probs"
    assert side.input_size == 96 and side.colour == "grey"
    assert side.labels == LABELS
    assert side.saliency.in_graph and side.saliency.method == "sun"
    assert len(side.saliency.params["scales"]) == 9  # type: ignore[arg-type]
    assert side.model["arch"] == "learning_emotion_small"


def test_shipped_default_model_is_complete_and_small():
    shipped = Path(__file__).resolve().parents[2] / "models" / "weights" / "learning_emotion.onnx"
    side = ModelSidecar.load(shipped.with_suffix(".json"))  # verifies the ONNX hash
    assert shipped.stat().st_size <= 25 * 1024 * 1024
    assert side.labels == LABELS and side.colour == "grey"
    sess = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"])
    x = np.zeros((2, 3, side.input_size, side.input_size), dtype=np.float32)
    probs = sess.run([side.output_name], {side.input_name: x})[0]
    assert probs.shape == (2, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_evaluate_cli_writes_report_and_png(exported, tiny_data, tmp_path):
    out = tmp_path / "report.json"
    rc = evaluate_main(
        ["--onnx", str(exported), "--data", str(tiny_data), "--split", "test", "--out", str(out)]
    )
    assert rc == 0
    rep = json.loads(out.read_text())
    assert set(rep) == REPORT_KEYS
    assert rep["n"] == 12  # 2 test crops per class
    assert list(rep["per_class"]) == list(LABELS)
    assert all(
        set(v) == {"precision", "recall", "f1", "support"} for v in rep["per_class"].values()
    )
    assert sum(v["support"] for v in rep["per_source"].values()) == 12
    cm = np.array(rep["confusion_matrix"])
    assert cm.shape == (6, 6) and cm.sum() == 12 and (cm.sum(axis=1) == 2).all()
    assert 0.0 <= rep["macro_f1"] <= 1.0
    assert out.with_suffix(".png").stat().st_size > 1000


def test_evaluate_without_split_column_uses_all_rows(exported, tiny_data, tmp_path):
    folder = tmp_path / "nosplit"
    folder.mkdir()
    with (tiny_data / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:5]
    with (folder / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerows([[r["path"], r["label"]] for r in rows])
    out = tmp_path / "r.json"
    assert evaluate_main(["--onnx", str(exported), "--data", str(folder), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["n"] == 5 and list(rep["per_source"]) == ["unknown"]


def test_scoring_cli_scores_a_checkpoint_at_its_own_size_without_export(
    tiny_run, tiny_data, tmp_path
):
    from models.scoring import main as scoring_main

    best = tmp_path / "best.pt"
    shutil.copy2(tiny_run / "best.pt", best)
    args = ["--checkpoint", str(best), "--data", str(tiny_data)]
    assert scoring_main([*args, "--split", "test"]) == 0
    rep = json.loads((tmp_path / "best.test.json").read_text())  # default: beside the checkpoint
    assert set(rep) == REPORT_KEYS and rep["n"] == 12
    cm = np.array(rep["confusion_matrix"])
    assert cm.shape == (6, 6) and (cm.sum(axis=1) == 2).all()
    out = tmp_path / "all.json"
    assert scoring_main([*args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == 42  # every row: 3 + 2 + 2 crops per class


def test_scoring_cli_names_a_missing_checkpoint(tiny_data, tmp_path, capsys):
    from models.scoring import main as scoring_main

    missing = tmp_path / "nope.pt"
    assert scoring_main(["--checkpoint", str(missing), "--data", str(tiny_data)]) == 2
    assert str(missing) in capsys.readouterr().err

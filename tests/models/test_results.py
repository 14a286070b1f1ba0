"""The results job on two copies of a tiny real run (export, evaluate, summarise)."""

from __future__ import annotations

import json
import shutil

import pytest

from models.results import main as results_main

pytestmark = pytest.mark.slow


def test_results_job_summarises_seeds(tiny_run, tiny_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / "tiny-gate-s0").mkdir(parents=True)
    shutil.copy(tiny_run / "best.pt", runs / "tiny-gate-s0" / "best.pt")
    out = tmp_path / "results"
    argv = ["--runs", str(runs), "--data", str(tiny_data), "--split", "val", "--out", str(out)]
    assert results_main(argv) == 0  # exports s0 to model.onnx and evaluates it
    assert (runs / "tiny-gate-s0" / "model.onnx").is_file()
    # a second "seed" with the same weights; its ONNX is up to date, so only evaluation runs
    shutil.copytree(runs / "tiny-gate-s0", runs / "tiny-gate-s1", copy_function=shutil.copy2)
    assert results_main(argv) == 0
    summary = json.loads((out / "summary.val.json").read_text())
    entry = summary["tiny-gate"]
    assert entry["macro_f1"]["n"] == 2
    assert entry["macro_f1"]["std"] == pytest.approx(0.0)  # same weights -> same scores
    assert 0.0 <= entry["macro_f1"]["mean"] <= 1.0
    assert (out / "tiny-gate-s0.val.json").is_file() and (out / "tiny-gate-s1.val.png").is_file()
    assert "| tiny-gate | 2 |" in capsys.readouterr().out

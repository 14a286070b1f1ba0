"""The results job on two copies of a tiny real run (export, evaluate, summarise)."""

from __future__ import annotations

import json
import shutil

import pytest

from models.results import main as results_main

pytestmark = pytest.mark.slow


def test_results_job_summarises_seeds(tiny_runs, tiny_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    # two "seeds" with the same weights; their ONNX is up to date, so only evaluation runs
    for seed in (0, 1):
        shutil.copytree(tiny_runs / "tiny-gate-s0", runs / f"tiny-gate-s{seed}")
    out = tmp_path / "results"
    argv = ["--runs", str(runs), "--data", str(tiny_data), "--split", "val", "--out", str(out)]
    assert results_main(argv) == 0
    summary = json.loads((out / "summary.val.json").read_text())
    entry = summary["tiny-gate"]
    assert entry["macro_f1"]["n"] == 2
    assert entry["macro_f1"]["std"] == pytest.approx(0.0)  # same weights -> same scores
    assert 0.0 <= entry["macro_f1"]["mean"] <= 1.0
    assert (out / "tiny-gate-s0.val.json").is_file() and (out / "tiny-gate-s1.val.png").is_file()
    assert "| tiny-gate | 2 |" in capsys.readouterr().out
    record = json.loads((out / "runs.json").read_text())
    assert set(record) == {"tiny-gate-s0", "tiny-gate-s1"}
    assert record["tiny-gate-s0"]["train_config"]["stem"] == "patch"
    assert record["tiny-gate-s0"]["history"]  # validation history kept

    # a recorded run whose folder is gone keeps its report in the summary
    shutil.rmtree(runs / "tiny-gate-s1")
    assert results_main(argv) == 0
    summary = json.loads((out / "summary.val.json").read_text())
    assert summary["tiny-gate"]["macro_f1"]["n"] == 2

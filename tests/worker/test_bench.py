"""Smoke test of `python -m worker.bench` (tiny run; the real numbers come from the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.bench import main

pytestmark = pytest.mark.slow

KEYS = {
    "frames_per_s",
    "faces_per_s",
    "latency_p50_s",
    "latency_p95_s",
    "peak_rss_mb",
    "device",
    "providers",
    "baseline_faces_per_s",
    "speedup",
    "faces_expected",
    "faces_found_per_frame",
    "full_searches_per_frame",
}


def test_bench_prints_the_issue_keys(
    model_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--quick",
            "--model",
            str(model_path),
            "--data-dir",
            str(data_dir),
            "--device",
            "cpu",
            "--ticks",
            "3",
            "--latency-ticks",
            "2",
            "--baseline-frames",
            "2",
            "--rounds",
            "2",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS
    assert result["faces_expected"] == 30
    assert result["faces_found_per_frame"] >= 25
    assert 0 < result["full_searches_per_frame"] <= 1
    assert result["faces_per_s"] > 0 and result["baseline_faces_per_s"] > 0
    assert result["providers"] == ["CPUExecutionProvider"] and result["device"] == "cpu"


def test_bench_without_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--data-dir", str(tmp_path)]) == 2
    assert "shared frames not found" in capsys.readouterr().err

"""The sweep job: a plan of real training runs side by side, then export, test and summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.emotion import check_arch, create_model
from models.errors import ConfigError
from models.sweep import main, read_plan
from models.train import Trainer
from models.train_config import parse_cli
from tests.models.conftest import TINY_CFG

PLANS = Path(__file__).resolve().parents[2] / "models" / "plans"


def test_plan_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=str(bad)):
        read_plan(bad)
    bad.write_text(json.dumps({"common": [], "runs": {}}))
    with pytest.raises(ConfigError, match="expected"):
        read_plan(bad)
    bad.write_text(json.dumps({"runs": {"a b/../c": ["--seed", "0"]}}))
    with pytest.raises(ConfigError, match="plain name"):
        read_plan(bad)


def test_new_head_lives_on_the_model_device_and_in_the_optimiser(tmp_path: Path) -> None:
    model = create_model("learning_emotion_small", img_size=64, window_size=4)
    trainer = Trainer(TINY_CFG, tmp_path, model, sun={})
    trainer.new_head(7)
    head = list(model.head.parameters())  # type: ignore[union-attr]
    body = next(model.parameters())
    assert all(p.device == body.device for p in head)
    optimised = {id(p) for g in trainer.opt.param_groups for p in g["params"]}
    assert {id(p) for p in head} <= optimised
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.slow
def test_sweep_trains_tests_and_summarises(
    tiny_data: Path, tiny_fer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "learning-emotions").symlink_to(tiny_data)
    (data / "fer2013").symlink_to(tiny_fer)
    monkeypatch.setenv("EMO_DATA_DIR", str(data))
    monkeypatch.setenv("EMO_CACHE_DIR", str(tmp_path / "cache"))
    common = ["--img-size", "64", "--batch-size", "8", "--pretrain-steps", "2"]
    common += ["--finetune-steps", "2", "--eval-every", "1", "--report-split", "test"]
    plan = {
        "common": common,
        "runs": {
            "fusion-gate-s0": ["--arch", "learning_emotion_small", "--window-size", "4"],
            "resnet18-s0": ["--arch", "baseline:resnet18"],
        },
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "results"
    argv = ["--plan", str(tmp_path / "plan.json"), "--runs", str(tmp_path / "runs")]
    assert main([*argv, "--out", str(out), "--deadline-min", "5", "--jobs", "2"]) == 0
    status = json.loads((out / "sweep.json").read_text())
    for name in plan["runs"]:
        assert status[name]["returncode"] == 0 and status[name]["tested"]
        assert status[name]["phases"]["finetune"]["step"] == 2
        assert status[name]["report_from"] == "onnx"
        report = json.loads((out / f"{name}.test.json").read_text())
        assert report["n"] == 12 and 0.0 <= report["macro_f1"] <= 1.0
        # the PyTorch report the run wrote itself agrees with the exported model's
        torch_report = json.loads((tmp_path / "runs" / name / "best.test.json").read_text())
        assert torch_report["confusion_matrix"] == report["confusion_matrix"]
    summary = json.loads((out / "summary.test.json").read_text())
    assert set(summary) == {"fusion-gate", "resnet18"}
    # without the export, the PyTorch reports are the results
    quick = tmp_path / "quick"
    assert main([*argv, "--out", str(quick), "--deadline-min", "5", "--no-export"]) == 0
    status = json.loads((quick / "sweep.json").read_text())
    assert all(status[n]["report_from"] == "pytorch" for n in plan["runs"])
    assert set(json.loads((quick / "summary.test.json").read_text())) == set(summary)


@pytest.mark.parametrize("plan", sorted(PLANS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_plans_parse_into_train_configs(plan: Path, tmp_path: Path) -> None:
    """A plan waits for a lent GPU; a typo in it must show here, not in the lease."""
    common, runs = read_plan(plan)
    assert runs
    for name, args in runs.items():
        cfg, out, resume = parse_cli([*common, *args, "--out", str(tmp_path / name)])
        assert out == tmp_path / name and resume is None
        assert cfg.pretrain_minutes > 0 and cfg.finetune_minutes > 0, name
        check_arch(cfg.arch)  # the check create_model makes: raises on an unknown name

"""models.graft: a global-only pre-training's branch inside a fresh fusion model, fine-tuned."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.checkpoint import load_checkpoint, model_from_checkpoint
from models.emotion import LearningEmotionNet
from models.errors import CheckpointError
from models.graft import graft, main
from models.train import train
from tests.models.conftest import TINY_CFG

pytestmark = pytest.mark.slow


def test_a_grafted_fusion_model_starts_from_the_global_run_and_fine_tunes(
    tiny_data, tiny_fer, tmp_path
):
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer))
    train(replace(cfg, fusion="none", finetune_steps=0), tmp_path / "pre")
    pre = load_checkpoint(tmp_path / "pre" / "last.pt")
    out = tmp_path / "grafted.pt"
    assert (
        main(
            [
                "--checkpoint",
                str(tmp_path / "pre" / "last.pt"),
                "--fusion-init",
                "zero",
                "--local-drop",
                "0.3",
                "--seed",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model, ckpt = model_from_checkpoint(out)
    assert isinstance(model, LearningEmotionNet) and model.local_branch is not None
    assert ckpt["model_args"]["local_drop"] == 0.3 and ckpt["model_args"]["fusion_init"] == "zero"
    assert ckpt["model_args"]["sun"] == pre["model_args"]["sun"]  # the global run's SUN fit
    assert ckpt["graft"]["fresh"] == ["fusions", "local_branch"]
    for key, value in pre["model"].items():  # global branch and head copied unchanged
        assert torch.equal(ckpt["model"][key], value), key
    tc = [ckpt["model"][k] for k in ckpt["model"] if k.startswith("fusions.") and ".tc." in k]
    assert tc and all(torch.count_nonzero(w) == 0 for w in tc)  # --fusion-init zero
    # the seed draws the fresh local branch
    other = graft(tmp_path / "pre" / "last.pt", tmp_path / "other.pt", seed=2)
    local = [k for k in other["model"] if k.startswith("local_branch.") and k.endswith("weight")]
    assert any(not torch.equal(other["model"][k], ckpt["model"][k]) for k in local)

    train(replace(cfg, init=str(out), local_drop=0.3), tmp_path / "ft")
    run = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert "pretrain" not in run["phases"] and run["phases"]["finetune"]["step"] == 2
    assert run["model_args"]["fusion"] == "gate"
    assert any(not torch.equal(run["model"][k], ckpt["model"][k]) for k in local)


def test_graft_refuses_a_fusion_checkpoint_naming_it(tiny_run, tmp_path):
    with pytest.raises(CheckpointError, match=r"best\.pt is not a global-branch-only model"):
        graft(tiny_run / "best.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    assert (
        main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o.pt")]) == 2
    )

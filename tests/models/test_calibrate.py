"""Per-class logit offsets fitted on validation and folded into the classifier bias."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.calibrate import calibrate, classifier, fit_offsets, main
from models.checkpoint import load_checkpoint, model_from_checkpoint
from models.errors import CheckpointError
from models.metrics import macro_f1


def test_offsets_undo_a_class_the_model_under_predicts() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 50)
    logits = rng.normal(0.0, 1.0, (300, 6))
    logits[np.arange(300), labels] += 2.0  # mostly right ...
    logits[:, 4] -= 2.5  # ... but class 4 is pushed down for everyone
    before = macro_f1(labels, logits.argmax(1))
    offsets = fit_offsets(logits, labels)
    after = macro_f1(labels, (logits + offsets).argmax(1))
    assert after > before + 0.05
    assert offsets[4] - np.median(offsets) > 1.0  # the shortfall of class 4 is given back


@pytest.mark.slow
def test_calibrated_checkpoint_folds_offsets_into_the_head(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "calibrated.pt"
    record = calibrate(tiny_run / "best.pt", out, tiny_data, "val")
    assert record["macro_f1_after"] >= record["macro_f1_before"]
    before, _ = model_from_checkpoint(tiny_run / "best.pt")
    after, ckpt = model_from_checkpoint(out)
    delta = (classifier(after).bias - classifier(before).bias).detach().numpy()
    assert np.allclose(delta, list(record["logit_offsets"].values()), atol=1e-6)
    assert "optimizer" not in ckpt and ckpt["calibration"]["split"] == "val"
    with torch.no_grad():  # the rest of the network is untouched
        x = torch.rand(2, 3, 96, 96)
        diff = after(x) - before(x)
    assert torch.allclose(diff, torch.from_numpy(delta).float().expand(2, -1), atol=1e-5)


@pytest.mark.slow
def test_calibration_refuses_the_test_split_and_a_second_pass(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match="test split"):
        calibrate(tiny_run / "best.pt", tmp_path / "c.pt", tiny_data, "test")
    calibrate(tiny_run / "best.pt", tmp_path / "c.pt", tiny_data, "val")
    assert load_checkpoint(tmp_path / "c.pt")["calibration"]
    with pytest.raises(CheckpointError, match="already calibrated"):
        calibrate(tmp_path / "c.pt", tmp_path / "c2.pt", tiny_data, "val")


@pytest.mark.slow
def test_offsets_can_be_transferred_from_another_calibrated_checkpoint(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    fitted = calibrate(tiny_run / "best.pt", tmp_path / "fitted.pt", tiny_data, "val")
    moved = calibrate(
        tiny_run / "last.pt", tmp_path / "moved.pt", tiny_data, "val", tmp_path / "fitted.pt"
    )
    assert moved["logit_offsets"] == fitted["logit_offsets"]
    assert moved["offsets_from"] == str(tmp_path / "fitted.pt")
    before, _ = model_from_checkpoint(tiny_run / "last.pt")
    after, _ = model_from_checkpoint(tmp_path / "moved.pt")
    delta = (classifier(after).bias - classifier(before).bias).detach().numpy()
    assert np.allclose(delta, list(fitted["logit_offsets"].values()), atol=1e-4)
    with pytest.raises(CheckpointError, match=r"best\.pt is not calibrated"):
        calibrate(tiny_run / "last.pt", tmp_path / "x.pt", tiny_data, "val", tiny_run / "best.pt")
    argv = ["--checkpoint", str(tiny_run / "last.pt"), "--offsets-from", str(tmp_path / "nope.pt")]
    assert main([*argv, "--data", str(tiny_data), "--out", str(tmp_path / "y.pt")]) == 2
    assert not (tmp_path / "y.pt").exists()

"""The class-conditional source adversary (--source-adversary): its loss, its reversed
gradient, and a real fine-tuning run with it on real crops from two sources per class."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
import torch

from contract.labels import LABELS
from models.adversary import SourceAdversary, ramp, reverse_gradient
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.train import train
from models.train_config import parse_cli
from tests.models.conftest import TINY_CFG, real_rows, write_manifest

# class 0 from sources 0 and 1, class 1 from source 2 only, class 2 from sources 1 and 2
LABELS_ = np.array([0, 0, 1, 2, 2])
SOURCES = np.array([0, 1, 2, 1, 2])


def test_the_mask_holds_each_class_s_own_sources():
    adv = SourceAdversary.for_data(4, LABELS_, SOURCES, n_classes=3)
    assert adv.mask.tolist() == [[True, True, False], [False, False, True], [False, True, True]]
    assert adv.head.out_features == 9


def test_the_loss_covers_only_classes_with_two_sources_among_their_own_sources():
    torch.manual_seed(0)
    adv = SourceAdversary.for_data(4, LABELS_, SOURCES, n_classes=3)
    pooled = torch.randn(5, 4)
    y, s = torch.from_numpy(LABELS_), torch.from_numpy(SOURCES)
    # by hand: class 1 (one source) drops out; the others compete among their two sources
    logits = adv.head(pooled).view(5, 3, 3)
    want = []
    for i in (0, 1, 3, 4):
        own = adv.mask[y[i]].nonzero().flatten()
        row = logits[i, y[i], own]
        want.append(torch.logsumexp(row, 0) - logits[i, y[i], s[i]])
    assert torch.allclose(adv.loss(pooled, y, s, 1.0), torch.stack(want).mean(), atol=1e-6)
    only_single = adv.loss(pooled[2:3], y[2:3], s[2:3], 1.0)
    assert only_single.item() == 0.0 and only_single.requires_grad is False


def test_the_features_get_the_head_s_gradient_reversed_and_scaled():
    x = torch.randn(3, 4, requires_grad=True)
    (reverse_gradient(x, 0.25) * torch.arange(4.0)).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, -0.25 * torch.arange(4.0).expand(3, 4))
    assert ramp(0.0) == 0.0 and ramp(1.0) > 0.99 and 0.0 < ramp(0.1) < ramp(0.3) < 1.0


@pytest.fixture
def two_sources(data_dir, tmp_path):
    """Training crops with joy from FER2013 and CK+ and focus from DAiSEE and AffectNet."""
    with (data_dir / "learning-emotions" / "manifest.csv").open(newline="") as fh:
        shared = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    rows = real_rows(data_dir, "val", 2)
    picks = [("joy", "fer2013"), ("joy", "ckplus"), ("focus", "daisee")]
    picks += [("focus", "affectnet-relabel")] + [(lab, "") for lab in LABELS[2:]]
    for label, source in picks:
        rows += [r for r in shared if r["label"] == label and source in ("", r["source"])][:3]
    return write_manifest(tmp_path / "two", rows, data_dir)


@pytest.mark.slow
def test_a_run_trains_the_adversary_saves_it_and_resumes_it(tiny_run, two_sources, tmp_path):
    cfg = replace(TINY_CFG, data_dir=str(two_sources), init=str(tiny_run / "best.pt"))
    cfg = replace(cfg, source_adversary=1.0, finetune_steps=6)
    train(cfg, tmp_path / "run")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    mask = last["adversary"]["mask"]
    # joy (FER2013, CK+) and focus (DAiSEE, AffectNet) have two sources each; the rest one
    assert mask.shape[0] == len(LABELS) and mask.sum(dim=1).tolist() == [2, 2, 1, 1, 1, 1]
    start = load_checkpoint(tiny_run / "best.pt")
    assert set(last["model"]) == set(start["model"])  # the exported network is unchanged
    train(replace(cfg, finetune_steps=7), tmp_path / "run", resume=tmp_path / "run" / "last.pt")
    again = load_checkpoint(tmp_path / "run" / "last.pt")
    assert again["phases"]["finetune"]["step"] == 7
    w0, w1 = last["adversary"]["head.weight"], again["adversary"]["head.weight"]
    assert not torch.equal(w0, w1)  # the resumed head went on learning


def test_the_adversary_is_refused_for_baselines_and_below_zero(two_sources, tmp_path):
    with pytest.raises(ConfigError, match="--source-adversary must be >= 0"):
        parse_cli(["--source-adversary", "-1"])
    cfg = replace(TINY_CFG, arch="baseline:resnet18", data_dir=str(two_sources), img_size=64)
    cfg = replace(cfg, source_adversary=1.0, pretrain_steps=0)
    with pytest.raises(ConfigError, match="--source-adversary needs a fusion model"):
        train(cfg, tmp_path / "b")

"""Joy read by the FER2013 head: real tiny --fer-aux runs, their soup, real crops."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from contract.labels import LABELS
from models.checkpoint import load_checkpoint
from models.data import FER_CLASSES
from models.errors import CheckpointError
from models.ferjoy import joy_from_fer, main, score
from models.soup import make_soup
from models.train import train

from .conftest import TINY_CFG

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aux_runs(
    tiny_run: Path, tiny_data: Path, tiny_fer: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Two real --fer-aux continuations of the tiny run (seeds 0 and 1): their last.pt."""
    outs = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"aux-s{seed}")
        cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), seed=seed)
        train(replace(cfg, init=str(tiny_run / "best.pt"), fer_aux=0.5), out)
        outs.append(out / "last.pt")
    return outs


def test_joy_takes_the_happy_probability_and_the_rest_keep_their_ratios():
    six = torch.tensor([[0.5, 0.3, 0.1, 0.05, 0.05, 0.0], [0.0, 0.2, 0.2, 0.2, 0.2, 0.2]])
    fer = torch.zeros(2, len(FER_CLASSES))
    fer[:, FER_CLASSES.index("happy")] = torch.tensor([0.8, 0.1])
    fer[:, FER_CLASSES.index("neutral")] = torch.tensor([0.2, 0.9])
    out = joy_from_fer(six, fer)
    joy = LABELS.index("joy")
    assert torch.allclose(out.sum(1), torch.ones(2))
    assert torch.allclose(out[:, joy], torch.tensor([0.8, 0.1]))
    assert torch.allclose(out[0, 1:] / out[0, 1], six[0, 1:] / six[0, 1])  # ratios kept
    assert torch.allclose(out[1, 1:], torch.full((5,), 0.18))


def test_the_soup_averages_the_fer2013_heads(aux_runs, tiny_data, tmp_path):
    make_soup(aux_runs, tmp_path / "soup.pt", tiny_data)
    heads = [load_checkpoint(p)["aux_head"]["weight"] for p in aux_runs]
    assert not torch.equal(heads[0], heads[1])
    soup = load_checkpoint(tmp_path / "soup.pt")
    assert torch.allclose(soup["aux_head"]["weight"], (heads[0] + heads[1]) / 2, atol=1e-6)


def test_both_reports_on_real_crops_and_a_run_without_the_head_is_refused(
    aux_runs, tiny_run, tiny_data, tmp_path
):
    rep = score(aux_runs[0], tiny_data, "val")
    for key in ("ferjoy", "six_way"):
        assert rep[key]["n"] > 0 and 0.0 <= rep[key]["macro_f1"] <= 1.0
        assert set(rep[key]) >= {"accuracy", "per_class", "per_source", "confusion_matrix"}
    rows = [sum(r) for r in rep["ferjoy"]["confusion_matrix"]]
    assert rows == [sum(r) for r in rep["six_way"]["confusion_matrix"]]  # same crops
    with pytest.raises(CheckpointError, match="has no FER2013 head"):
        score(tiny_run / "best.pt", tiny_data, "val")
    out = tmp_path / "r.json"
    assert (
        main(["--checkpoint", str(aux_runs[1]), "--data", str(tiny_data), "--out", str(out)]) == 0
    )
    assert json.loads(out.read_text())["split"] is None
    bad = ["--checkpoint", str(tiny_run / "best.pt"), "--data", str(tiny_data), "--out", str(out)]
    assert main(bad) == 2

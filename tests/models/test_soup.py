"""Model soups: weight averages of real tiny runs, greedy choice on val, refusals by name."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.calibrate import calibrate
from models.checkpoint import load_checkpoint
from models.errors import CheckpointError
from models.export import export
from models.soup import average_states, main, make_soup
from models.train import train

from .conftest import TINY_CFG

pytestmark = pytest.mark.slow


def test_uniform_soup_is_the_mean_and_goes_through_calibrate_and_export(
    tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    a, b = tiny_run / "best.pt", second_run
    record = make_soup([a, b], tmp_path / "soup.pt", tiny_data)
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    soup = load_checkpoint(tmp_path / "soup.pt")
    assert soup["soup"]["ingredients"] == [str(a), str(b)] and record["method"] == "uniform"
    differing = [k for k in wa if wa[k].is_floating_point() and not torch.equal(wa[k], wb[k])]
    assert differing  # two seeds: the ingredients really differ
    for key in differing:
        assert torch.allclose(soup["model"][key], (wa[key] + wb[key]) / 2, atol=1e-6)
    assert 0.0 <= record["macro_f1"] <= 1.0
    calibrate(tmp_path / "soup.pt", tmp_path / "cal.pt", tiny_data, "val")
    export(
        tmp_path / "cal.pt", tmp_path / "soup.onnx", n_parity=4
    )  # fails unless ORT matches torch
    assert (tmp_path / "soup.onnx").stat().st_size > 0


def test_weights_interpolate_and_an_end_point_is_the_ingredient(
    tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    a = tiny_run / "best.pt"
    make_soup([a, second_run], tmp_path / "end.pt", tiny_data, weights=[1.0, 0.0])
    wa, end = load_checkpoint(a)["model"], load_checkpoint(tmp_path / "end.pt")["model"]
    assert all(torch.equal(wa[k], end[k]) for k in wa)
    wb = load_checkpoint(second_run)["model"]
    mixed = average_states([wa, wb], [3.0, 1.0])
    key = next(k for k in wa if wa[k].is_floating_point() and not torch.equal(wa[k], wb[k]))
    assert torch.allclose(mixed[key], 0.75 * wa[key] + 0.25 * wb[key], atol=1e-6)


def test_greedy_soup_starts_from_the_best_ingredient_and_never_gets_worse(
    tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    paths = [tiny_run / "best.pt", second_run, tiny_run / "last.pt"]
    record = make_soup(paths, tmp_path / "greedy.pt", tiny_data, greedy=True)
    alone = record["greedy"]["alone"]
    assert set(alone) == {str(p) for p in paths}
    assert alone[record["ingredients"][0]] == max(alone.values())
    assert record["macro_f1"] == pytest.approx(record["greedy"]["best"])
    assert record["macro_f1"] >= max(alone.values())
    assert len(record["greedy"]["trials"]) == len(paths) - 1


def test_bad_ingredients_are_refused_by_name(
    tiny_run: Path, second_run: Path, tiny_data: Path, tiny_fer: Path, tmp_path: Path
) -> None:
    a = tiny_run / "best.pt"
    calibrate(a, tmp_path / "cal.pt", tiny_data, "val")
    with pytest.raises(CheckpointError, match=r"cal\.pt is calibrated"):
        make_soup([a, tmp_path / "cal.pt"], tmp_path / "x.pt", tiny_data)
    with pytest.raises(CheckpointError, match="test split"):
        make_soup([a, second_run], tmp_path / "x.pt", tiny_data, split="test")
    with pytest.raises(CheckpointError, match="one non-negative number per ingredient"):
        make_soup([a, second_run], tmp_path / "x.pt", tiny_data, weights=[1.0])
    other = tmp_path / "global-only"
    train(replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), fusion="none"), other)
    with pytest.raises(CheckpointError, match="different model"):
        make_soup([a, other / "best.pt"], tmp_path / "x.pt", tiny_data)
    assert (
        main(
            ["--checkpoints", str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]
        )
        == 2
    )
    assert not (tmp_path / "x.pt").exists()

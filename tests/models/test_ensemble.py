"""Prediction ensembles and test-time flip on real tiny runs and real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.batches import Batches
from models.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint, save_checkpoint
from models.data import load_grey, load_manifest
from models.ensemble import class_probs, ensemble_report, main, member_probs
from models.errors import CheckpointError, ExportError, RecoveryError
from models.evaluate import evaluate
from models.export import export
from models.metrics import confusion
from models.recover import recover
from models.scoring import input_norm, run_img_size, split_report

pytestmark = pytest.mark.slow


def test_one_member_ensemble_is_that_model_scored_alone(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    best = tiny_run / "best.pt"
    alone = split_report(best, tiny_data, "test", None, None, out=tmp_path / "alone.json")
    ens = ensemble_report([best], tiny_data, "test", out=tmp_path / "ens.json")
    assert ens["confusion_matrix"] == alone["confusion_matrix"]
    assert ens["macro_f1"] == alone["macro_f1"]
    assert ens["ensemble"]["members"][0]["macro_f1"] == alone["macro_f1"]
    assert (tmp_path / "ens.json").is_file()


def test_two_members_average_their_probabilities(
    tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    a, b = tiny_run / "best.pt", second_run
    rows = load_manifest(tiny_data, "test")
    pa, pb = (member_probs(p, rows, flip=False) for p in (a, b))
    assert not np.allclose(pa, pb)  # two seeds: the members really differ
    assert np.allclose(pa.sum(1), 1.0, atol=1e-5)
    ens = ensemble_report([a, b], tiny_data, "test", out=tmp_path / "ens.json")
    labels = np.array([r.label for r in rows])
    expected = confusion(labels, ((pa + pb) / 2).argmax(1))
    assert ens["confusion_matrix"] == expected.tolist()
    alone = [
        split_report(p, tiny_data, "test", None, None, out=tmp_path / f"{i}.json")
        for i, p in enumerate((a, b))
    ]
    assert [m["macro_f1"] for m in ens["ensemble"]["members"]] == [r["macro_f1"] for r in alone]
    assert ens["ensemble"]["members_mean_macro_f1"] == pytest.approx(
        np.mean([r["macro_f1"] for r in alone])
    )
    assert ens["n"] == len(rows) and ens["ensemble"]["flip"] is False


def test_flip_is_the_mean_of_the_face_and_its_mirror(tiny_run: Path, tiny_data: Path) -> None:
    model, ckpt = model_from_checkpoint(tiny_run / "best.pt")
    mean, std = input_norm(model)
    rows = load_manifest(tiny_data, "val")
    grey = load_grey(rows, run_img_size(ckpt, tiny_run / "best.pt"))  # (N, H, W)
    labels = np.array([r.label for r in rows])
    plain = class_probs(model, Batches(grey, labels, mean, std), flip=False)
    mirror_grey = np.ascontiguousarray(grey[:, :, ::-1])  # (N, H, W) mirrored
    mirror = class_probs(model, Batches(mirror_grey, labels, mean, std), flip=False)
    flipped = class_probs(model, Batches(grey, labels, mean, std), flip=True)
    assert not np.allclose(plain, mirror)  # the model is not mirror-symmetric by construction
    assert np.allclose(flipped, (plain + mirror) / 2, atol=1e-6)


def test_cli_writes_beside_the_first_member_and_names_bad_members(
    tiny_run: Path,
    second_run: Path,
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a = tmp_path / "a" / "best.pt"
    a.parent.mkdir()
    a.write_bytes((tiny_run / "best.pt").read_bytes())
    assert (
        main(
            [
                "--checkpoints",
                str(a),
                str(second_run),
                "--data",
                str(tiny_data),
                "--split",
                "test",
                "--flip",
            ]
        )
        == 0
    )
    written = a.with_name("ensemble.test.json")
    assert written.is_file() and '"flip": true' in written.read_text()
    missing = tmp_path / "nope" / "best.pt"
    assert main(["--checkpoints", str(missing), "--data", str(tiny_data)]) == 2
    assert str(missing) in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="given twice"):
        ensemble_report([a, a], tiny_data, "test")


def test_exported_ensemble_with_flip_scores_as_the_pytorch_ensemble(
    tiny_run: Path, second_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    a, b = tiny_run / "best.pt", second_run
    onnx_path = tmp_path / "ens.onnx"
    side = export([a, b], onnx_path, flip=True, n_parity=8)  # ExportError above 1e-4
    assert side.model["arch"] == "ensemble" and side.model["flip"] is True
    members = side.model["members"]
    assert isinstance(members, list) and len(members) == 2
    assert side.checkpoint_sha256 not in {file_sha256(a), file_sha256(b)}
    assert side.saliency.in_graph and side.input_size == 96
    ours = evaluate(onnx_path, tiny_data, "test", tmp_path / "onnx.json")
    torch_rep = ensemble_report([a, b], tiny_data, "test", flip=True, out=tmp_path / "pt.json")
    assert ours["confusion_matrix"] == torch_rep["confusion_matrix"]
    with pytest.raises(RecoveryError, match="ensemble of 2"):
        recover(onnx_path, tmp_path / "back.pt", n_parity=4)


def test_export_refuses_members_that_disagree_on_framing(
    tiny_run: Path, second_run: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(second_run)
    odd = tmp_path / "odd.pt"
    save_checkpoint(odd, {**ckpt, "crop_scale": 1.6})
    with pytest.raises(ExportError, match=f"member {odd}"):
        export([tiny_run / "best.pt", odd], tmp_path / "x.onnx", n_parity=4)

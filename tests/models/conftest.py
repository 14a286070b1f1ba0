"""Fixtures for model tests: tiny manifests of real crops and a tiny real training run."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.sidecar import ModelSidecar
from models.data import FRAMING, SHARED_CROP_SCALE, load_manifest, read_rgb, write_manifest_as
from models.reframe import OUT_SIDE, cut
from models.train import TrainConfig, train

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "weights" / "learning_emotion.onnx"

PER_CLASS = {"train": 3, "val": 2, "test": 2}


def real_rows(data_dir: Path, split: str, per_class: int) -> list[dict[str, str]]:
    """The first ``per_class`` rows of each label in ``split`` of the shared manifest."""
    manifest = data_dir / "learning-emotions" / "manifest.csv"
    with manifest.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split]
    picked: list[dict[str, str]] = []
    for label in ("joy", "focus", "thinking", "boredom", "confusion", "drowsy"):
        picked += [r for r in rows if r["label"] == label][:per_class]
    return picked


def write_manifest(folder: Path, rows: list[dict[str, str]], data_dir: Path) -> Path:
    """A manifest.csv in ``folder`` whose paths point (absolutely) at the shared crops."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0].keys())
    with (folder / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            abs_path = str(data_dir / "learning-emotions" / r["path"])
            writer.writerow({**r, "path": abs_path})
    return folder


@pytest.fixture(scope="session")
def tiny_data(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest folder with a few real crops per class and split (no images copied)."""
    rows: list[dict[str, str]] = []
    for split, n in PER_CLASS.items():
        rows += real_rows(data_dir, split, n)
    return write_manifest(tmp_path_factory.mktemp("tiny") / "le", rows, data_dir)


def shipped_sidecar() -> ModelSidecar:
    """The shipped model's sidecar (input size, framing); loading verifies the ONNX hash."""
    return ModelSidecar.load(SHIPPED.with_suffix(".json"))


def shipped_takes_shared_crops() -> bool:
    """Whether the shipped model takes the shared 1.3x crops (else a models.reframe framing)."""
    return abs(shipped_sidecar().crop_scale - SHARED_CROP_SCALE) <= 1e-3


def in_shipped_framing(folder: Path, out: Path) -> Path:
    """A copy of manifest ``folder`` (1.3x crops) in the shipped model's framing
    at ``out``: each crop's central window of crop_scale / 1.3 of its side (models.reframe's
    rule for box sources) with framing.json; ``folder`` itself when the shipped model takes the
    shared 1.3x crops."""
    if shipped_takes_shared_crops():
        return folder
    scale = shipped_sidecar().crop_scale
    (out / "images").mkdir(parents=True)
    side = scale / SHARED_CROP_SCALE
    names = []
    for i, row in enumerate(load_manifest(folder)):
        bgr = np.ascontiguousarray(read_rgb(row.path, OUT_SIDE)[:, :, ::-1])
        names.append(f"images/{i:05d}.jpg")
        assert cv2.imwrite(str(out / names[-1]), cut(bgr, (1 - side) / 2, (1 - side) / 2, side))
    write_manifest_as(folder, out, names)
    (out / FRAMING).write_text(json.dumps({"crop_scale": scale}))
    return out


@pytest.fixture(scope="session")
def shipped_framed(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_data`` in the shipped model's framing (``in_shipped_framing``)."""
    return in_shipped_framing(tiny_data, tmp_path_factory.mktemp("shipped-framing") / "le")


@pytest.fixture(scope="session")
def tiny_fer(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FER2013-format folder with 32 real FER2013 training faces."""
    folder = tmp_path_factory.mktemp("fer")
    with np.load(data_dir / "fer2013" / "train.npz") as npz:
        np.savez(folder / "train.npz", images=npz["images"][:32], labels=npz["labels"][:32])
    return folder


TINY_CFG = TrainConfig(
    batch_size=8,
    pretrain_steps=2,
    finetune_steps=2,
    eval_every=1,
    pretrain_minutes=5,
    finetune_minutes=5,
)


@pytest.fixture(scope="session")
def tiny_run(tiny_data: Path, tiny_fer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (2 + 2 step) training run of the fusion model; returns its folder."""
    out = tmp_path_factory.mktemp("run")
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer))
    train(cfg, out)
    return out


@pytest.fixture(scope="session")
def second_run(tiny_data: Path, tiny_fer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's recipe with seed 1 (its best.pt): a second real model for soups and
    ensembles."""
    out = tmp_path_factory.mktemp("run-s1")
    train(replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), seed=1), out)
    return out / "best.pt"


@pytest.fixture(scope="session")
def tiny_runs(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with the tiny run as ``tiny-gate-s0``, exported (fp32) to model.onnx.

    ``export`` itself fails unless ONNX Runtime matches PyTorch within 1e-4 on real crops.
    """
    from models.export import export

    runs = tmp_path_factory.mktemp("runs")
    run = runs / "tiny-gate-s0"
    run.mkdir()
    shutil.copy2(tiny_run / "best.pt", run / "best.pt")
    export(run / "best.pt", run / "model.onnx", n_parity=8)
    return runs


@pytest.fixture(scope="session")
def exported(tiny_runs: Path) -> Path:
    """The tiny run's exported ONNX (with its sidecar model.json beside it)."""
    return tiny_runs / "tiny-gate-s0" / "model.onnx"

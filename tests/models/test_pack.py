"""Packing the data for a training machine: crops read back bit-identical, FER2013 close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.data import SHARED_CROP_SCALE, crop_scale_of, load_images, load_manifest, to_grey_rgb
from models.errors import DataError
from models.pack import pack_crops, pack_fer, unpack_fer


def test_packed_crops_enter_training_identically(tiny_data: Path, tmp_path: Path) -> None:
    n = pack_crops(tiny_data, 64, tmp_path / "le")
    original = load_manifest(tiny_data)
    packed = load_manifest(tmp_path / "le")
    assert n == len(original) == len(packed)
    assert [(r.label, r.source, r.split) for r in packed] == [
        (r.label, r.source, r.split) for r in original
    ]
    a = to_grey_rgb(load_images(original, 64))
    b = to_grey_rgb(load_images(packed, 64))
    assert np.array_equal(a, b)  # lossless for the pipeline at the packed size
    assert sum(p.stat().st_size for p in (tmp_path / "le" / "images").iterdir()) < a.size // 3
    assert crop_scale_of(tmp_path / "le") == SHARED_CROP_SCALE  # nothing reframed here


def test_a_reframed_folder_keeps_its_framing(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tiny_data, src)
    (src / "framing.json").write_text('{"crop_scale": 0.8878}')
    pack_crops(src, 64, tmp_path / "le")
    assert crop_scale_of(tmp_path / "le") == 0.8878


def test_fer_mosaics_round_trip(tiny_fer: Path, tmp_path: Path) -> None:
    assert pack_fer(tiny_fer, tmp_path / "fer", quality=90) == 32
    npz = unpack_fer(tmp_path / "fer")
    with np.load(npz) as got, np.load(tiny_fer / "train.npz") as want:
        assert got["images"].shape == want["images"].shape == (32, 48, 48)
        assert np.array_equal(got["labels"], want["labels"])
        err = np.abs(got["images"].astype(float) - want["images"]).mean()
        assert 0 < err < 3.0  # lossy, about 1.5 grey levels at quality 90


def test_unpack_names_a_folder_that_is_not_packed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)):
        unpack_fer(tmp_path)

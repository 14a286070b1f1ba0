"""Bad input gets a clear error naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from models.data import load_images, load_manifest
from models.errors import ImageReadError, ManifestError, SidecarMismatchError
from models.evaluate import main as evaluate_main
from models.evaluate import open_model


def _manifest(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.csv").write_text(text)
    return folder


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match=r"manifest .*manifest.csv not found"):
        load_manifest(tmp_path)


def test_manifest_without_required_columns(tmp_path):
    d = _manifest(tmp_path / "d", "file,emotion\na.jpg,joy\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['path', 'label'\]"):
        load_manifest(d)
    d2 = _manifest(tmp_path / "d2", "path,label\na.jpg,joy\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['split'\]"):
        load_manifest(d2, "test")


def test_unknown_label_names_file_and_line(tmp_path):
    d = _manifest(tmp_path / "d", "path,label\na.jpg,joy\nb.jpg,happy\n")
    with pytest.raises(ManifestError, match=r"manifest.csv line 3: unknown label 'happy'"):
        load_manifest(d)


def test_empty_split(tmp_path):
    d = _manifest(tmp_path / "d", "path,label,split\na.jpg,joy,train\n")
    with pytest.raises(ManifestError, match="no rows for split 'test'"):
        load_manifest(d, "test")


def test_unreadable_and_missing_images_are_named(tmp_path):
    d = _manifest(tmp_path / "d", "path,label\nbroken.jpg,joy\nmissing.jpg,focus\n")
    (d / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    rows = load_manifest(d)
    with pytest.raises(ImageReadError, match=r"broken.jpg cannot be decoded"):
        load_images(rows[:1], 96)
    with pytest.raises(ImageReadError, match=r"missing.jpg not found"):
        load_images(rows[1:], 96)


@pytest.mark.slow
def test_model_sidecar_mismatches_are_named(exported, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    shutil.copy(exported, onnx_path)
    side = json.loads(exported.with_suffix(".json").read_text())
    with pytest.raises(SidecarMismatchError, match=r"m.json not found"):
        open_model(onnx_path)
    (tmp_path / "m.json").write_text(json.dumps({**side, "onnx_file": "m.onnx"}))
    open_model(onnx_path)  # consistent pair opens
    (tmp_path / "m.json").write_text(json.dumps({**side, "onnx_file": "m.onnx", "input_size": 112}))
    with pytest.raises(SidecarMismatchError, match=r"m.onnx input .* != sidecar .*m.json"):
        open_model(onnx_path)
    (tmp_path / "m.json").write_text(json.dumps({**side, "onnx_file": "m.onnx"}))
    onnx_path.write_bytes(onnx_path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(SidecarMismatchError, match=r"m.onnx does not match sidecar"):
        open_model(onnx_path)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(SidecarMismatchError, match=r"m.json is malformed"):
        open_model(onnx_path)


def test_evaluate_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    rc = evaluate_main(
        ["--onnx", str(tmp_path / "x.onnx"), "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    )
    assert rc == 2
    assert "x.onnx not found" in capsys.readouterr().err


def _missing_input_argv(tmp_path, monkeypatch):
    """Each job with a missing input it must name: (main, argv, the named path)."""
    from models.export import main as export_main
    from models.recover import main as recover_main
    from models.train import main as train_main

    monkeypatch.setenv("EMO_DATA_DIR", str(tmp_path / "no-data"))
    ckpt, onnx = tmp_path / "missing.pt", tmp_path / "missing.onnx"
    return [
        (export_main, ["--checkpoint", str(ckpt), "--out", str(tmp_path / "x.onnx")], ckpt),
        (recover_main, ["--onnx", str(onnx), "--out", str(tmp_path / "r.pt")], tmp_path),
        (
            train_main,
            ["--pretrain-steps", "0", "--finetune-steps", "1", "--out", str(tmp_path / "run")],
            tmp_path / "no-data",
        ),
    ]


def test_jobs_end_bad_input_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    # Every models.* job shares models.cli.entry_point: a missing input is one "error:" line
    # naming it and exit status 2, never a traceback (export, recover and train used to raise).
    for main, argv, named in _missing_input_argv(tmp_path, monkeypatch):
        assert main(argv) == 2, main.__module__
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and str(named) in lines[0], (main.__module__, err)
        assert "Traceback" not in err

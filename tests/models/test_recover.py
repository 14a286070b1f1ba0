"""Recovering checkpoints from exported ONNX files (the shipped one included), and --init .onnx."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from contract.sidecar import ModelSidecar, sha256_file
from models.checkpoint import build_model, load_checkpoint, model_from_checkpoint, save_checkpoint
from models.errors import ConfigError, RecoveryError
from models.export import check_parity, export, parity_inputs, store_weights_fp16
from models.recover import recover, recover_model
from models.train import train
from tests.models.conftest import SHIPPED, TINY_CFG, shipped_sidecar

pytestmark = pytest.mark.slow


def test_shipped_model_comes_back_as_a_checkpoint_that_reproduces_it(tmp_path):
    out = recover(SHIPPED, tmp_path / "shipped.pt", n_parity=16)  # raises above 1e-4
    model, ckpt = model_from_checkpoint(out)
    assert ckpt["recovered_from"]["parity_max_abs"] <= 1e-4
    size = shipped_sidecar().input_size
    assert ckpt["model_args"]["img_size"] == size
    assert ckpt["crop_scale"] == shipped_sidecar().crop_scale
    x = parity_inputs(size, (0.5,) * 3, (0.25,) * 3, 7)  # another batch size than the check's
    assert check_parity(model, SHIPPED, x, 1e-4) <= 1e-4


def test_recovered_weights_equal_the_trained_ones(tiny_run, exported):
    """fp32 export: every weight the graph uses comes back bit-exact."""
    trained, _ = model_from_checkpoint(tiny_run / "best.pt")
    got, _ = recover_model(exported)
    ref = trained.state_dict()
    for name, value in got.state_dict().items():
        if name.startswith("local_branch.norm."):  # not used by the graph
            continue
        assert torch.equal(value, ref[name]), name


def test_fp16_stored_weights_come_back_as_their_fp16_values(exported, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    shutil.copy2(exported, onnx_path)
    shutil.copy2(exported.with_suffix(".json"), onnx_path.with_suffix(".json"))
    store_weights_fp16(onnx_path)
    side = onnx_path.with_suffix(".json")  # the sidecar records the file's hash: refresh it
    sc = ModelSidecar.load(side, verify_onnx=False)
    side.write_text(sc.model_copy(update={"onnx_sha256": sha256_file(onnx_path)}).model_dump_json())
    model, _ = recover_model(onnx_path)
    x = parity_inputs(96, (0.5,) * 3, (0.25,) * 3, 4)
    assert check_parity(model, onnx_path, x, 1e-4) <= 1e-4


def test_recovery_refuses_a_model_whose_sidecar_does_not_match(exported, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    shutil.copy2(SHIPPED, onnx_path)  # the shipped graph beside the tiny run's sidecar
    shutil.copy2(exported.with_suffix(".json"), onnx_path.with_suffix(".json"))
    with pytest.raises(RecoveryError, match="does not match sidecar"):
        recover(onnx_path, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_init_from_an_onnx_file_fine_tunes_the_shipped_model(shipped_framed, tmp_path):
    size = shipped_sidecar().input_size
    cfg = replace(TINY_CFG, img_size=size, data_dir=str(shipped_framed), init=str(SHIPPED))
    best = train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "init.pt").is_file()
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert set(last["phases"]) == {"finetune"}  # no pre-training, the shipped head kept
    assert best.is_file()


def test_init_with_the_wrong_input_size_is_named(tiny_data, tmp_path):
    size = shipped_sidecar().input_size
    wrong = 64 if size != 64 else 96
    cfg = replace(TINY_CFG, img_size=wrong, data_dir=str(tiny_data), init=str(SHIPPED))
    with pytest.raises(ConfigError, match=f"{size} px model: pass --img-size {size}"):
        train(cfg, tmp_path / "run")


def test_conv_stem_batchnorms_folded_by_the_exporter_come_back(tiny_run, tmp_path):
    """The exporter folds each conv-stem BatchNorm into its conv; recovery reads the folded conv
    back with an identity BatchNorm that adds the folded bias: the same function."""
    ckpt = load_checkpoint(tiny_run / "best.pt")
    args = {**ckpt["model_args"], "stem": "conv"}
    model = build_model(ckpt["arch"], args).eval()
    gen = torch.Generator().manual_seed(1)
    trained = {k: v for k, v in ckpt["model"].items() if k in model.state_dict()}
    model.load_state_dict({k: v for k, v in trained.items() if ".patch_embed." not in k}, False)
    with torch.no_grad():  # a random stem with BatchNorm statistics far from their defaults
        for name, p in model.named_parameters():
            if ".patch_embed." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
    save_checkpoint(tmp_path / "c.pt", {**ckpt, "model_args": args, "model": model.state_dict()})
    export(tmp_path / "c.pt", tmp_path / "c.onnx", n_parity=4)
    got, _ = recover_model(tmp_path / "c.onnx")
    stem_bn = got.state_dict()["global_branch.patch_embed.convs.1.weight"]
    assert torch.equal(stem_bn, torch.ones_like(stem_bn))  # folded into the conv
    x = parity_inputs(args["img_size"], (0.5,) * 3, (0.25,) * 3, 5)
    assert check_parity(got, tmp_path / "c.onnx", x, 1e-4) <= 1e-4
    with torch.no_grad():  # the check means something: the faces get different scores
        assert float(got(torch.from_numpy(x)).std(0).max()) > 1e-2

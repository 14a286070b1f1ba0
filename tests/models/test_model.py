"""Forward shapes of every fusion variant, ablation and baseline."""

from __future__ import annotations

from dataclasses import replace

import pytest
import timm
import torch

from contract.labels import LABELS
from models.checkpoint import build_model, model_args_of
from models.data import load_images, load_manifest, normalise
from models.emotion import BaselineNet, create_model
from models.emotion.fusion import (
    ConvStem,
    FusionConfig,
    LearningEmotionNet,
    StageFusion,
    create_fusion_model,
)
from models.errors import ConfigError


@pytest.mark.parametrize("fusion", ["gate", "sum", "none"])
def test_small_variant_and_ablations_forward(fusion):
    torch.manual_seed(0)
    model = create_fusion_model("learning_emotion_small", fusion=fusion).eval()
    x = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
    assert feats.shape == (3, 3, 3, 256)  # (B, H/32, W/32, 8 * embed) NHWC
    assert logits.shape == (3, len(LABELS))
    assert torch.isfinite(logits).all()
    has_local = fusion != "none"
    assert (model.local_branch is not None) == has_local
    assert len(model.fusions) == (4 if has_local else 0)


def test_fusion_changes_output_and_saliency_is_inside():
    torch.manual_seed(0)
    model = create_fusion_model("learning_emotion_small", fusion="gate").eval()
    x = torch.randn(2, 3, 96, 96)
    sal = model.saliency_map(x)
    assert sal.shape == (2, 1, 96, 96) and sal.min() >= 0 and sal.max() <= 1
    with torch.no_grad():
        base = model(x)
        fusion0 = model.fusions[0]
        assert isinstance(fusion0.tc, torch.nn.Conv2d)
        fusion0.tc.weight.mul_(2.0)  # the local path really feeds the output
        assert not torch.allclose(base, model(x))


@pytest.mark.parametrize("fusion", ["gate", "none"])
def test_conv_stem_replaces_patchify_in_every_branch(fusion):
    torch.manual_seed(0)
    model = create_fusion_model(
        "learning_emotion_small", img_size=64, window_size=4, fusion=fusion, stem="conv"
    ).eval()
    branches = [model.global_branch] + ([model.local_branch] if fusion != "none" else [])
    for branch in branches:
        assert isinstance(branch, torch.nn.Module)
        assert isinstance(branch.patch_embed, ConvStem)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stem_out = model.global_branch.patch_embed(x)
        logits = model(x)
    assert stem_out.shape == (2, 16, 16, 32)  # (B, H/4, W/4, embed) NHWC, as PatchEmbed gives
    assert logits.shape == (2, len(LABELS)) and torch.isfinite(logits).all()
    rebuilt = build_model("learning_emotion_small", model_args_of(model))  # checkpoint args
    assert isinstance(rebuilt, LearningEmotionNet) and rebuilt.cfg.stem == "conv"
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), logits)


def test_variants_are_registered_in_timm_and_tiny_is_swin_tiny_sized():
    assert "learning_emotion_small" in timm.list_models("learning_emotion_*")
    tiny = timm.create_model("learning_emotion_tiny", pretrained=False)
    assert isinstance(tiny, LearningEmotionNet)
    assert tiny.cfg.embed_dim == 96 and tiny.cfg.depths == (2, 2, 6, 2)
    with torch.no_grad():
        assert tiny(torch.zeros(1, 3, 224, 224)).shape == (1, len(LABELS))


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto", "vit_tiny", "maxvit_nano"])
def test_baselines_forward(name):
    model = create_model(f"baseline:{name}", img_size=64).eval()
    assert isinstance(model, BaselineNet)
    with torch.no_grad():
        out = model(torch.randn(2, 3, model.img_size, model.img_size))
    assert out.shape == (2, len(LABELS))


def test_unknown_architectures_and_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="unknown model architecture 'nope'"):
        create_model("nope")
    with pytest.raises(ConfigError, match="unknown baseline"):
        create_model("baseline:nope")
    with pytest.raises(ConfigError, match="fusion must be"):
        FusionConfig(fusion="concat")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="stem must be"):
        FusionConfig(stem="hybrid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="multiple of 32"):
        FusionConfig(img_size=100)


def test_photo_norm_makes_the_model_blind_to_brightness_and_contrast(data_dir):
    rows = load_manifest(data_dir / "learning-emotions", "val")[::97][:8]  # real crops
    pix = load_images(rows, 64).astype("float32") / 255.0  # (8, 64, 64, 3) in [0, 1]
    torch.manual_seed(0)
    model = create_fusion_model("learning_emotion_small", img_size=64, window_size=4).eval()
    darker = pix * 0.7 + 0.05  # a dimmer, flatter camera: stays inside [0, 1]

    def logits(images, on):
        model.cfg = replace(model.cfg, photo_norm=on)
        x = torch.from_numpy(
            normalise((images * 255).round().astype("uint8"), (0.5,) * 3, (0.25,) * 3, grey=True)
        )
        with torch.no_grad():
            return model(x)

    assert not torch.allclose(logits(pix, False), logits(darker, False), atol=1e-3)
    assert torch.allclose(logits(pix, True), logits(darker, True), atol=2e-2)
    assert model_args_of(model)["photo_norm"] is True  # travels in checkpoints and sidecars


def test_zero_fusion_init_starts_as_the_global_path_and_then_learns_the_local_one():
    torch.manual_seed(0)
    default = create_fusion_model("learning_emotion_small", window_size=4, img_size=64)
    torch.manual_seed(0)
    zero = create_fusion_model(
        "learning_emotion_small", window_size=4, img_size=64, fusion_init="zero"
    )
    # same random draw: only the TC convs differ, and they start at 0
    for (name, a), (_, b) in zip(
        default.state_dict().items(), zero.state_dict().items(), strict=True
    ):
        if ".tc." in name:
            assert b.abs().sum() == 0 and a.abs().sum() > 0, name
        else:
            assert torch.equal(a, b), name
    x = torch.randn(4, 3, 64, 64)
    zero.eval()
    with torch.no_grad():
        before = zero(x)
        assert zero.local_branch is not None
        for p in zero.local_branch.parameters():
            p.add_(1.0)  # the saliency branch does not reach the output yet
        assert torch.allclose(before, zero(x))
    zero.train()
    opt = torch.optim.SGD(zero.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(zero(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    tcs = [f.tc for f in zero.fusions if isinstance(f, StageFusion)]
    assert len(tcs) == 4 and all(isinstance(tc, torch.nn.Conv2d) for tc in tcs)
    assert all(tc.weight.abs().sum() > 0 for tc in tcs)  # gradients reach it
    assert model_args_of(zero)["fusion_init"] == "zero"
    rebuilt = build_model("learning_emotion_small", model_args_of(zero))
    assert isinstance(rebuilt, LearningEmotionNet) and rebuilt.cfg.fusion_init == "zero"
    with pytest.raises(ConfigError, match="fusion_init zero needs fusion gate"):
        create_fusion_model("learning_emotion_small", fusion="sum", fusion_init="zero")
    with pytest.raises(ConfigError, match="fusion_init must be"):
        create_fusion_model("learning_emotion_small", fusion_init="small")


def test_local_drop_zeroes_the_saliency_branch_of_some_training_faces_only():
    torch.manual_seed(0)
    model = create_fusion_model(
        "learning_emotion_small", window_size=4, img_size=64, local_drop=0.5
    )
    assert model.local_branch is not None
    x = torch.randn(64, 3, 64, 64)
    model.eval()  # scoring and export: every face keeps its saliency branch
    with torch.no_grad():
        scored = model(x)
        for p in model.local_branch.parameters():
            p.add_(0.5)
        moved = ~torch.isclose(scored, model(x)).all(dim=1)
    assert bool(moved.all())
    model.train()
    model.head_drop.p = 0.0  # the head's dropout would hide which faces kept their saliency
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x)
        for p in model.local_branch.parameters():
            p.sub_(0.5)
        torch.manual_seed(1)  # the same faces dropped (drop path draws alike too)
        b = model(x)
    same = torch.isclose(a, b).all(dim=1)
    assert 0.3 < same.float().mean() < 0.7  # those dropped ignore the local branch
    with pytest.raises(ConfigError, match="local_drop must be in"):
        create_fusion_model("learning_emotion_small", fusion="none", local_drop=0.2)
    with pytest.raises(ConfigError, match="local_drop must be in"):
        create_fusion_model("learning_emotion_small", local_drop=1.0)

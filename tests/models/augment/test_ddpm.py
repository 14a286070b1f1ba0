"""Latent DDPM augmenter: schedule, process, a tiny real training run on real crops,
sampling to a manifest folder that training reads, the memorisation check and bad input."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.labels import LABELS
from models.augment import (
    AutoencoderConfig,
    DenoiserConfig,
    GaussianDiffusion,
    LatentAutoencoder,
    LatentDenoiser,
    cosine_beta_schedule,
)
from models.augment.__main__ import main
from models.augment.job import (
    AugmentConfig,
    Augmenter,
    SamplerSettings,
    load_ddpm_checkpoint,
    load_training_crops,
    parse_counts,
    sample_folder,
    train_augmenter,
)
from models.augment.quality import nearest_neighbour_report
from models.data import load_manifest
from models.errors import CheckpointError, ConfigError
from models.settings import ModelsSettings
from models.train import load_split_data
from tests.models.conftest import TINY_CFG

TINY = AugmentConfig(
    batch_size=8, ae_steps=3, ddpm_steps=3, timesteps=50, save_every=2, ae_minutes=5
)


def test_cosine_schedule_is_a_valid_noise_schedule():
    betas = cosine_beta_schedule(1000)
    assert betas.shape == (1000,)
    assert bool(((betas > 0) & (betas < 1)).all())
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all())  # strictly more noise each step
    assert alpha_bar[0] > 0.999 and alpha_bar[-1] < 1e-4


def test_diffusion_rejects_bad_betas_and_bad_step_counts():
    den = LatentDenoiser(DenoiserConfig(channels=(8, 16)))
    with pytest.raises(ValueError, match="betas"):
        GaussianDiffusion(den, torch.tensor([0.1, 1.5]), den.null_class)
    diff = GaussianDiffusion(den, cosine_beta_schedule(10), den.null_class)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="steps"):
        diff.sample(torch.zeros(1, dtype=torch.long), (4, 4, 4), gen, steps=11)


def test_samples_stay_in_the_latent_range_even_from_an_untrained_denoiser():
    """An untrained denoiser predicts zero noise, so every predicted clean latent is z_t
    divided by sqrt(alpha_bar): the worst case for the blow-up the sampler guards against."""
    torch.manual_seed(0)
    den = LatentDenoiser(DenoiserConfig(channels=(8, 16))).eval()
    diff = GaussianDiffusion(den, cosine_beta_schedule(1000), den.null_class)
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(6)
    z = diff.sample(y, (4, 8, 8), gen, steps=10, guidance=1.0, clip=3.0, eta=1.0)
    assert z.shape == (6, 4, 8, 8) and bool(torch.isfinite(z).all())
    assert float(z.abs().max()) <= 3.0


def test_denoiser_learns_on_real_latents(tiny_data):
    """A few dozen seeded steps on the tiny set's latents lower the noise-prediction loss."""
    x, y = load_training_crops(replace(TINY, data_dir=str(tiny_data)))
    torch.manual_seed(0)
    z = LatentAutoencoder(AutoencoderConfig()).encode(x)[0].detach()  # (N, 4, 16, 16)
    z = z / z.std()
    den = LatentDenoiser(DenoiserConfig(channels=(16, 32), dropout=0.0))
    diff = GaussianDiffusion(den, cosine_beta_schedule(50), den.null_class)
    opt = torch.optim.AdamW(den.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = diff.loss(z, y, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_autoencoder_reconstruction_improves_on_real_crops(tiny_data):
    x, _ = load_training_crops(replace(TINY, data_dir=str(tiny_data)))
    assert x.shape[1:] == (1, 64, 64) and -1.0 <= float(x.min()) < float(x.max()) <= 1.0
    torch.manual_seed(0)
    ae = LatentAutoencoder(AutoencoderConfig())
    assert ae.encode(x)[0].shape == (len(x), 4, 16, 16)
    opt = torch.optim.AdamW(ae.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    l1 = []
    for _ in range(40):
        loss, parts = ae.loss(x, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        l1.append(parts["l1"])
    assert np.mean(l1[-5:]) < 0.7 * np.mean(l1[:5])


@pytest.fixture(scope="module")
def tiny_ddpm(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (3 + 3 step) augmenter run on the tiny set of real crops; its ddpm.pt."""
    out = tmp_path_factory.mktemp("ddpm")
    return train_augmenter(replace(TINY, data_dir=str(tiny_data)), out)


def test_checkpoint_describes_itself_and_resumes(tiny_ddpm, tiny_data):
    ckpt = load_ddpm_checkpoint(tiny_ddpm)
    assert tuple(ckpt["labels"]) == LABELS
    assert ckpt["progress"]["ae_done"] and ckpt["progress"]["ddpm_step"] == 3
    assert ckpt["progress"]["latent_scale"] > 0
    assert ckpt["config"]["timesteps"] == 50
    more = replace(TINY, data_dir=str(tiny_data), ddpm_steps=5)
    train_augmenter(more, tiny_ddpm.parent, resume=True)
    again = load_ddpm_checkpoint(tiny_ddpm)
    assert again["progress"]["ae_step"] == 3  # the autoencoder phase is not redone
    assert again["progress"]["ddpm_step"] == 5


def test_samples_form_a_training_manifest(tiny_ddpm, tiny_data, tmp_path):
    aug = Augmenter.load(tiny_ddpm)
    counts = {LABELS.index("confusion"): 3, LABELS.index("thinking"): 2}
    settings = SamplerSettings(steps=4, guidance=2.0, eta=1.0)
    folder = sample_folder(aug, counts, tmp_path / "samples", settings, seed=1)
    rows = load_manifest(folder, "train")
    assert [LABELS[r.label] for r in rows] == ["confusion"] * 3 + ["thinking"] * 2
    assert {r.source for r in rows} == {"ddpm"}
    crops = load_training_crops(replace(TINY, data_dir=str(folder)))[0]
    assert crops.shape == (5, 1, 64, 64) and float(crops.std()) > 0  # not blank images
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), img_size=64)
    base = load_split_data(cfg, ModelsSettings())["train"]
    extra = load_split_data(replace(cfg, synthetic=str(folder)), ModelsSettings())["train"]
    assert len(extra[0]) == len(base[0]) + 5
    assert np.array_equal(extra[1][len(base[1]) :], [4, 4, 4, 2, 2])
    out = tmp_path / "nn.json"
    args = ["check", "--samples", str(folder), "--data", str(tiny_data)]
    assert main([*args, "--checkpoint", str(tiny_ddpm), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["per_class"]) == {"confusion", "thinking"}
    assert all(np.isfinite(v["sample_nn_median"]) for v in report["per_class"].values())
    assert set(report["autoencoder_val_rms"]) == set(LABELS)  # 2 val crops per class
    assert all(0 < v < 1 for v in report["autoencoder_val_rms"].values())


def test_copies_of_training_crops_are_flagged_as_near_copies(tiny_data, tmp_path):
    with (tiny_data / "manifest.csv").open(newline="") as fh:
        train = [r for r in csv.DictReader(fh) if r["split"] == "train"]
    folder = tmp_path / "copies"
    folder.mkdir()
    with (folder / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(train[0]))
        writer.writeheader()
        writer.writerows(train)  # absolute paths: the training crops themselves
    report = nearest_neighbour_report(folder, tiny_data, 64)
    for stats in report["per_class"].values():
        assert stats["sample_nn_median"] == 0.0
        assert stats["near_copy_share"] == 1.0
        assert stats["train_nn_median"] > 0  # other crops, never the crop itself


@pytest.mark.parametrize("spec", ["confusion", "calm:3", "joy:0", "joy:x", ""])
def test_bad_per_class_specs_are_named(spec):
    with pytest.raises(ConfigError, match="per-class"):
        parse_counts(spec)


def test_bad_checkpoints_are_named(tiny_run, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="not found"):
        load_ddpm_checkpoint(tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="emo-ddpm/1"):
        load_ddpm_checkpoint(tiny_run / "best.pt")  # an emotion-model checkpoint
    args = ["sample", "--checkpoint", str(tiny_run / "best.pt"), "--per-class", "joy:1"]
    rc = main([*args, "--out", str(tmp_path / "s")])
    assert rc == 2 and "emo-ddpm/1" in capsys.readouterr().err

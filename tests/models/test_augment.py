"""Training augmentation on real crops: shapes kept, resolution jitter removes fine detail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.data import (
    augment,
    degrade,
    erase,
    load_images,
    load_manifest,
    normalise,
    photometric,
    zoom,
)


def _crops(tiny_data: Path) -> torch.Tensor:
    rows = load_manifest(tiny_data, "train")
    x = normalise(load_images(rows, 64), (0.5,) * 3, (0.25,) * 3, grey=True)
    return torch.from_numpy(x)


def _detail(x: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours (fine detail)."""
    return float((x[..., 1:] - x[..., :-1]).abs().mean())


def test_resolution_jitter_blurs_only_the_picked_images(tiny_data: Path) -> None:
    x = _crops(tiny_data)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(degrade(x, gen, p=0.0), x)
    out = degrade(x, gen, p=1.0)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert _detail(out) < 0.8 * _detail(x)
    changed = [not torch.allclose(a, b) for a, b in zip(out, x, strict=True)]
    assert np.mean(changed) > 0.9


def test_augment_keeps_shape_and_is_seeded(tiny_data: Path) -> None:
    x = _crops(tiny_data)
    a = augment(x, torch.Generator().manual_seed(1), degrade_p=0.5)
    b = augment(x, torch.Generator().manual_seed(1), degrade_p=0.5)
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(2), degrade_p=0.5))


def test_zoom_scales_the_face_about_the_centre_within_its_range(tiny_data: Path) -> None:
    x = _crops(tiny_data)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(zoom(x, gen, p=0.0), x)
    out = zoom(x, gen, p=1.0)
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 2])  # still grey
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5  # no new values
    assert np.mean([not torch.allclose(a, b, atol=1e-3) for a, b in zip(out, x, strict=True)]) > 0.9
    # a bright 16 px square in the middle: its area changes by the factor squared, 0.8..1.25
    sq = torch.full((64, 3, 64, 64), -1.0)
    sq[:, :, 24:40, 24:40] = 1.0
    areas = (zoom(sq, gen, p=1.0)[:, 0] > 0).sum(dim=(1, 2)).float() / 256.0
    assert areas.min() >= 0.8**2 * 0.85 and areas.max() <= 1.25**2 * 1.15
    assert areas.min() < 0.85 and areas.max() > 1.2  # both ways
    assert bool((zoom(sq, gen, p=1.0)[:, :, 31:33, 31:33] == 1.0).all())  # centre stays


def test_random_erasing_replaces_one_rectangle_per_picked_image(tiny_data: Path) -> None:
    x = _crops(tiny_data)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(erase(x, gen, p=0.0), x)
    out = erase(x, gen, p=1.0, area=(0.1, 0.2))
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 2])  # still grey
    changed = (out != x).any(dim=1)  # (B, H, W)
    for mask in changed:
        rows, cols = torch.nonzero(mask, as_tuple=True)
        box = (int(rows.max() - rows.min()) + 1) * (int(cols.max() - cols.min()) + 1)
        assert box == pytest.approx(int(mask.sum()), rel=0.05)  # one filled rectangle
        assert 0.07 * 64 * 64 <= box <= 0.25 * 64 * 64  # the asked area, rounding allowed


def test_photometric_changes_exposure_and_tone_with_the_sensor_clipping(tiny_data: Path) -> None:
    x = _crops(tiny_data)  # normalised with mean 0.5, std 0.25: pixels in [-2, 2]
    norm = (0.5, 0.25)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(photometric(x, gen, p=0.0, norm=norm), x)
    over = photometric(x, gen, p=1.0, norm=norm, exposure=(1.5, 1.5), gamma=(1.0, 1.0))
    assert over.mean() > x.mean() and over.max() <= 2.0 + 1e-6  # brighter, clipped at white
    assert (over >= 2.0 - 1e-6).float().mean() > (x >= 2.0 - 1e-6).float().mean()
    dark = photometric(x, gen, p=1.0, norm=norm, exposure=(1.0, 1.0), gamma=(1.6, 1.6))
    assert dark.mean() < x.mean() and dark.min() >= -2.0 - 1e-6  # gamma > 1 darkens mid-tones
    mixed = photometric(x, torch.Generator().manual_seed(1), p=0.5, norm=norm)
    changed = [not torch.equal(a, b) for a, b in zip(mixed, x, strict=True)]
    assert 0 < sum(changed) < len(changed)  # only the picked images
    again = photometric(x, torch.Generator().manual_seed(1), p=0.5, norm=norm)
    assert torch.equal(mixed, again)


def test_zoom_range_is_a_training_option_checked_by_name() -> None:
    from models.errors import ConfigError
    from models.train_config import parse_cli

    cfg, _, _ = parse_cli(["--zoom", "0.5", "--zoom-max", "1.5"])
    assert (cfg.zoom, cfg.zoom_max) == (0.5, 1.5)
    with pytest.raises(ConfigError, match="--zoom-max must be in"):
        parse_cli(["--zoom-max", "0.8"])
    sq = torch.full((64, 3, 64, 64), -1.0)
    sq[:, :, 24:40, 24:40] = 1.0
    wide = (zoom(sq, torch.Generator().manual_seed(0), 1.0, 1.5)[:, 0] > 0).sum(dim=(1, 2))
    assert float(wide.max()) / 256.0 > 1.25**2  # beyond the default range

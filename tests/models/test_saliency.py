"""SUN saliency on real face crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import load_images, load_manifest
from models.errors import ConfigError
from models.saliency import SunParams, SunSaliency, fit_ggd, fit_sun_params

SIZE = 112


@pytest.fixture(scope="module")
def crops(data_dir):
    """32 real webcam, DAiSEE and CK+ test crops (RGB in [0, 1]), aligned 1.3x face boxes."""
    rows = [
        r
        for r in load_manifest(data_dir / "learning-emotions", "test")
        if r.source in ("webcam-class", "daisee", "ckplus")
    ][::12][:32]
    rgb = load_images(rows, SIZE)
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0


def test_fit_ggd_recovers_known_shapes():
    rng = np.random.default_rng(0)
    scale, shape = fit_ggd(rng.laplace(0.0, 0.5, 200_000))
    assert shape == pytest.approx(1.0, abs=0.05)
    assert scale == pytest.approx(0.5, rel=0.05)
    scale, shape = fit_ggd(rng.normal(0.0, 1.0, 200_000))
    assert shape == pytest.approx(2.0, abs=0.08)
    assert scale == pytest.approx(np.sqrt(2.0), rel=0.05)


def _landmarks(crops: torch.Tensor) -> list[np.ndarray | None]:
    """MTCNN's five landmarks per crop, as fractions of the crop side (None if no face)."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=False, min_face_size=40, device="cpu")
    out: list[np.ndarray | None] = []
    for img in (crops.permute(0, 2, 3, 1) * 255).round().byte().numpy():
        _, _, lms = mtcnn.detect(img, landmarks=True)
        out.append(None if lms is None else np.asarray(lms[0], dtype=np.float64) / SIZE)
    return out


def _patch_mean(m: torch.Tensor, xy: np.ndarray, r: int = 6) -> float:
    x, y = int(xy[0] * SIZE), int(xy[1] * SIZE)
    return float(m[max(0, y - r) : y + r, max(0, x - r) : x + r].mean())


def test_saliency_maps_are_finite_in_range_and_favour_eyes_and_mouth(crops):
    params = fit_sun_params(list(crops.split(16)))
    assert len(params.scales) == 9 and all(s > 0 for s in params.scales)
    sal = SunSaliency(params, size=SIZE)
    with torch.no_grad():
        maps = sal(crops)[:, 0]  # (B, H, W)
    assert maps.shape == (len(crops), SIZE, SIZE)
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    # regions from MTCNN landmarks: eyes, mouth centre, and plain cheek below each eye
    eyes, mouth, cheek = [], [], []
    for m, lm in zip(maps, _landmarks(crops), strict=True):
        if lm is None:
            continue
        l_eye, r_eye, nose, l_mouth, r_mouth = lm
        eyes.append((_patch_mean(m, l_eye) + _patch_mean(m, r_eye)) / 2)
        mouth.append(_patch_mean(m, (l_mouth + r_mouth) / 2))
        l_cheek = np.array([l_eye[0], (nose[1] + l_mouth[1]) / 2])
        r_cheek = np.array([r_eye[0], (nose[1] + r_mouth[1]) / 2])
        cheek.append((_patch_mean(m, l_cheek) + _patch_mean(m, r_cheek)) / 2)
    assert len(eyes) >= 26, "MTCNN should find the face in nearly every aligned crop"
    assert np.mean(eyes) > np.mean(cheek)
    assert np.mean(mouth) > np.mean(cheek)


def test_other_input_sizes_work_and_batch_is_independent(crops):
    sal = SunSaliency(SunParams(), size=SIZE)
    with torch.no_grad():
        full = sal(crops[:4])
        single = sal(crops[2:3])
        small = sal(torch.nn.functional.interpolate(crops[:2], size=64))
    torch.testing.assert_close(full[2:3], single, atol=1e-5, rtol=0)
    assert small.shape == (2, 1, 64, 64)


def test_bad_params_are_rejected():
    with pytest.raises(ConfigError, match="9 scales"):
        SunParams(scales=(1.0,), shapes=(1.0,))
    with pytest.raises(ConfigError, match="bad SUN"):
        SunParams.from_dict({"sigmas": [1.0]})


def test_grey_path_equals_full_path_on_greyscale_input(crops):
    params = fit_sun_params(list(crops.split(16)))
    grey = crops.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # 3 identical channels
    with torch.no_grad():
        full = SunSaliency(params, size=SIZE)(grey)
        fast = SunSaliency(params, size=SIZE, grey=True)(grey)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=0)

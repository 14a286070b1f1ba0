"""Face-crop data: manifest loading, decoding, caching, preprocessing, FER2013 and augmentation.

A data directory holds ``manifest.csv`` with columns path, label, source, subject,
original_label, split, det_prob (paths relative to the directory). Only ``path`` and ``label``
are required; ``split`` is required when a split is requested.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from contract.labels import LABELS
from models.errors import ConfigError, DataError, ImageReadError, ManifestError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ("path", "label")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FRAMING = "framing.json"  # written by models.reframe
SHARED_CROP_SCALE = 1.3  # the shared crops: square 1.3x the MTCNN box (data README)


def crop_scale_of(data_dir: Path) -> float:
    """Crop side / detected box side of ``data_dir``'s crops: its ``framing.json`` or 1.3."""
    path = data_dir / FRAMING
    if not path.is_file():
        return SHARED_CROP_SCALE
    try:
        scale = float(json.loads(path.read_text())["crop_scale"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"framing file {path} unreadable: {exc} (expected JSON with a number 'crop_scale')"
        ) from exc
    if not 0.5 <= scale <= 3.0:
        raise DataError(f"framing file {path}: crop_scale {scale} outside [0.5, 3.0]")
    return scale


def check_framing(data_dir: Path, crop_scale: float, model: object) -> None:
    """Refuse to score or fit ``model`` (made for ``crop_scale`` crops) on other-framed crops."""
    have = crop_scale_of(data_dir)
    if abs(have - crop_scale) > 1e-3:
        raise DataError(
            f"{model} expects crops of {crop_scale}x the face box but {data_dir} holds "
            f"{have}x crops (see models.reframe): evaluate it on data framed as it was trained"
        )


@dataclass(frozen=True)
class ManifestRow:
    """One labelled face crop."""

    path: Path
    label: int
    source: str
    subject: str
    split: str


def load_manifest(data_dir: Path, split: str | None = None) -> list[ManifestRow]:
    """Rows of ``data_dir/manifest.csv`` (only ``split`` rows if given), validated."""
    manifest = data_dir / MANIFEST
    if not manifest.is_file():
        raise ManifestError(
            f"manifest {manifest} not found (expected a CSV with columns path,label)"
        )
    try:
        with manifest.open(newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"manifest {manifest} cannot be read as CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if split is not None and "split" not in columns:
        missing.append("split")
    if missing:
        raise ManifestError(f"manifest {manifest} lacks column(s) {missing}; has {columns}")
    rows = []
    for lineno, rec in enumerate(raw, start=2):
        label = (rec.get("label") or "").strip()
        if label not in LABELS:
            raise ManifestError(
                f"manifest {manifest} line {lineno}: unknown label {label!r}; "
                f"expected one of {LABELS}"
            )
        rel = (rec.get("path") or "").strip()
        if not rel:
            raise ManifestError(f"manifest {manifest} line {lineno}: empty path")
        row_split = (rec.get("split") or "").strip()
        if split is not None and row_split != split:
            continue
        rows.append(
            ManifestRow(
                path=data_dir / rel,
                label=LABELS.index(label),
                source=(rec.get("source") or "unknown").strip() or "unknown",
                subject=(rec.get("subject") or "").strip(),
                split=row_split,
            )
        )
    if not rows:
        what = f"split {split!r}" if split is not None else "any row"
        raise ManifestError(f"manifest {manifest} has no rows for {what}")
    return rows


def write_manifest_as(data_dir: Path, out: Path, paths: Sequence[str]) -> None:
    """``data_dir``'s manifest with every column kept and row i's path set to ``paths[i]``,
    written to ``out`` (for jobs that rewrite every crop into a new folder)."""
    with (data_dir / MANIFEST).open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        records = list(reader)
    if len(records) != len(paths):
        raise DataError(f"{len(paths)} new paths for the {len(records)} rows of {data_dir}")
    with (out / MANIFEST).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows({**rec, "path": path} for rec, path in zip(records, paths, strict=True))


def read_rgb(path: Path, size: int) -> np.ndarray:
    """Decode an image file to RGB uint8 (size, size, 3), or raise naming the file."""
    if not path.is_file():
        raise ImageReadError(f"image {path} not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageReadError(f"image {path} cannot be decoded (expected a JPEG/PNG image)")
    bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def load_images(
    rows: Sequence[ManifestRow], size: int, cache_dir: Path | None = None
) -> np.ndarray:
    """All rows' images as RGB uint8 (N, size, size, 3), cached by paths + size when asked."""
    cache: Path | None = None
    if cache_dir is not None:
        key = hashlib.sha256(
            ("\n".join(str(r.path) for r in rows) + f"|{size}").encode()
        ).hexdigest()[:16]
        cache = cache_dir / f"crops-{size}-{key}.npy"
        if cache.is_file():
            arr = np.load(cache)
            if arr.shape == (len(rows), size, size, 3):
                return arr
    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i] = read_rgb(row.path, size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.tmp.npy")  # concurrent runs
        np.save(tmp, out)
        tmp.replace(cache)
    return out


def load_grey(rows: Sequence[ManifestRow], size: int, cache_dir: Path | None = None) -> np.ndarray:
    """All rows' images as greyscale uint8 (N, size, size) (``load_images`` + BT.601 luma)."""
    return to_grey_rgb(load_images(rows, size, cache_dir))[..., 0]


def to_grey_rgb(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., 3) -> greyscale as 3 identical channels (BT.601 luma), uint8."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def normalise(
    rgb: np.ndarray, mean: Sequence[float], std: Sequence[float], grey: bool
) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) -> model input float32 (N, 3, H, W) as the sidecar describes."""
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise DataError(f"expected RGB images (N, H, W, 3), got shape {rgb.shape}")
    if grey:
        rgb = to_grey_rgb(rgb)
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    x = (rgb.astype(np.float32) / np.float32(255.0) - m) / s  # (N, H, W, 3)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)  # (N, 3, H, W)


def load_fer2013(fer_dir: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 ``split`` (train/test) as grey uint8 (N, size, size) and labels (N,)."""
    path = fer_dir / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"FER2013 file {path} not found (expected images/labels arrays)")
    try:
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"FER2013 file {path} is malformed: {exc}") from exc
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return out, labels


def fer_holdout(n: int, seed: int = 0, size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 training indices split into (fit, held out): ``size`` faces (at most a tenth)
    held out to watch pre-training learn, the same ones for every run. FER2013's official
    test faces are never used for this: they hold this data's joy test crops."""
    perm = np.random.default_rng(seed).permutation(n)
    k = min(size, n // 10)
    return np.sort(perm[k:]), np.sort(perm[:k])


def degrade(
    x: torch.Tensor, gen: torch.Generator, p: float, min_frac: float = 0.35
) -> torch.Tensor:
    """Resolution jitter: each image, with probability ``p``, is shrunk (area) to a random side
    in [min_frac, 1) of its own and enlarged back (bilinear), so sharpness, which differs by
    source (48 px FER2013 faces vs webcam crops), stops telling the classes apart."""
    b, _, h, w = x.shape
    pick = torch.rand(b, generator=gen) < p
    sides = (h * (min_frac + (1.0 - min_frac) * torch.rand(b, generator=gen))).long().clamp(8, h)
    out = x.clone()
    for i in torch.nonzero(pick).flatten().tolist():
        side = int(sides[i])
        small = torch.nn.functional.interpolate(x[i : i + 1], size=(side, side), mode="area")
        out[i : i + 1] = torch.nn.functional.interpolate(
            small, size=(h, w), mode="bilinear", align_corners=False
        )
    return out


def zoom(x: torch.Tensor, gen: torch.Generator, p: float, max_factor: float = 1.25) -> torch.Tensor:
    """Face-size jitter: each image, with probability ``p``, is enlarged or shrunk about its
    centre by a factor log-uniform in [1/max_factor, max_factor] (border pixels repeated), so
    that how large the face is in its crop, which differs by source and by detector, stops
    telling the classes apart (``models.reframe`` removes the difference between sources)."""
    b = x.shape[0]
    u = torch.rand(b, generator=gen) * 2.0 - 1.0
    factor = torch.exp(u * math.log(max_factor))
    pick = torch.nonzero(torch.rand(b, generator=gen) < p).flatten()
    if len(pick) == 0:
        return x
    theta = torch.zeros(len(pick), 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / factor[pick]  # factor > 1: narrower window
    grid = torch.nn.functional.affine_grid(theta, [len(pick), *x.shape[1:]], align_corners=False)
    out = x.clone()
    out[pick] = torch.nn.functional.grid_sample(
        x[pick], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out


def erase(
    x: torch.Tensor, gen: torch.Generator, p: float, area: tuple[float, float] = (0.05, 0.3)
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): each image, with probability ``p``, gets one
    rectangle of ``area`` (fraction of the image, aspect 1/3..3) filled with noise, so that
    no single face region (a hand over the mouth, say) decides the class alone."""
    b, c, h, w = x.shape
    out = x.clone()
    pick = torch.rand(b, generator=gen) < p
    frac = (area[0] + (area[1] - area[0]) * torch.rand(b, generator=gen)).tolist()
    aspect = torch.exp((torch.rand(b, generator=gen) * 2 - 1) * math.log(3.0)).tolist()
    for i in torch.nonzero(pick).flatten().tolist():
        eh = max(1, min(h, round(math.sqrt(frac[i] * h * w * aspect[i]))))
        ew = max(1, min(w, round(math.sqrt(frac[i] * h * w / aspect[i]))))
        top = int(torch.randint(0, h - eh + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - ew + 1, (1,), generator=gen))
        noise = torch.randn(1, eh, ew, generator=gen).expand(c, eh, ew)  # grey: same on 3 ch
        out[i, :, top : top + eh, left : left + ew] = noise
    return out


def photometric(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    p: float,
    norm: tuple[float, float],
    exposure: tuple[float, float] = (0.6, 1.5),
    gamma: tuple[float, float] = (0.6, 1.6),
) -> torch.Tensor:
    """Camera exposure and tone, in pixel space with the sensor's clipping: each normalised
    image (B, 3, H, W; ``norm`` = its (mean, std)), with probability ``p``, becomes
    clip(pixel * e, 0, 1) ** g, e and g log-uniform in ``exposure`` and ``gamma``. Unlike the
    brightness/contrast jitter of ``augment``, saturation and gamma are not undone by a
    per-image standardisation (``photo_norm``): the model has to learn to ignore them."""
    b = x.shape[0]
    mean, std = norm

    def log_uniform(lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(b, 1, 1, 1, generator=gen)
        return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)  # (B, 1, 1, 1)

    e, g = log_uniform(*exposure), log_uniform(*gamma)
    pick = (torch.rand(b, generator=gen) < p).view(b, 1, 1, 1)
    pix = (x * std + mean).clamp(0.0, 1.0)
    changed = ((pix * e).clamp(0.0, 1.0) ** g - mean) / std  # (B, 3, H, W)
    return torch.where(pick, changed, x)


def augment(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    max_shift: int = 8,
    degrade_p: float = 0.0,
    erase_p: float = 0.0,
    photometric_p: float = 0.0,
    zoom_p: float = 0.0,
    zoom_max: float = 1.25,
    norm: tuple[float, float] = (0.5, 0.25),
) -> torch.Tensor:
    """Train-time augmentation on a normalised batch (B, 3, H, W): flip, shift-crop, brightness.

    Shift-crop = reflect-pad by ``max_shift`` then a random crop back to (H, W) per image;
    brightness/contrast jitter is applied in normalised units (same for all 3 channels);
    with ``photometric_p`` > 0, camera exposure/gamma first (``photometric``, ``norm`` =
    the batch's (mean, std)); with ``zoom_p`` > 0, face-size jitter up to ``zoom_max``
    (``zoom``); with
    ``degrade_p`` > 0, resolution jitter next (``degrade``);
    with ``erase_p`` > 0, random erasing last (``erase``).
    """
    if photometric_p > 0:
        x = photometric(x, gen, p=photometric_p, norm=norm)
    if zoom_p > 0:
        x = zoom(x, gen, zoom_p, zoom_max)
    if degrade_p > 0:
        x = degrade(x, gen, degrade_p)
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(3), x)
    padded = torch.nn.functional.pad(x, (max_shift,) * 4, mode="reflect")  # (B, 3, H+2s, W+2s)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    rows = (
        (dy.view(b, 1) + torch.arange(h).view(1, h))
        .view(b, 1, h, 1)
        .expand(b, 3, h, w + 2 * max_shift)
    )
    x = padded.gather(2, rows)  # (B, 3, H, W+2s)
    cols = (dx.view(b, 1) + torch.arange(w).view(1, w)).view(b, 1, 1, w).expand(b, 3, h, w)
    x = x.gather(3, cols)  # (B, 3, H, W)
    contrast = 1.0 + 0.4 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    bright = 0.8 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    return erase(x, gen, erase_p) if erase_p > 0 else x


def parse_fer_extra(spec: str) -> dict[int, int]:
    """``"neutral:focus,angry:confusion"`` -> {FER2013 class index: learning-emotion index}."""
    mapping: dict[int, int] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        fer, _, ours = pair.partition(":")
        if fer not in FER_CLASSES or ours not in LABELS:
            raise ConfigError(
                f"--fer-extra pair {pair!r}: expected <{'|'.join(FER_CLASSES)}>:"
                f"<{'|'.join(LABELS)}>"
            )
        mapping[FER_CLASSES.index(fer)] = LABELS.index(ours)
    return mapping


def fer_extras(
    spec: str, fer_dir: Path, size: int, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` FER2013 *training* faces per class mapped by ``spec``, relabelled.

    Only FER2013's training file is read: its official test faces are this data's joy test
    crops. Happy is not a sensible mapping either (validation joy crops come from it)."""
    mapping = parse_fer_extra(spec)
    fx, fy = load_fer2013(fer_dir, "train", size)
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(fy == c))[:per_class] for c in mapping]
    idx = np.concatenate(picks)
    labels = np.array([mapping[int(c)] for c in fy[idx]], dtype=np.int64)
    logger.info("fine-tuning extras from FER2013: %s (%d faces)", spec, len(idx))
    return fx[idx], labels


def load_extra_crops(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row of ``folder``'s manifest as grey uint8 (N, size, size) + labels (N,).

    For extra training crops such as DDPM samples; never cached, because a sample folder is
    redrawn in place under the same file names."""
    rows = load_manifest(folder)
    grey = load_grey(rows, size)
    logger.info("extra training crops from %s: %d", folder, len(rows))
    return grey, np.array([r.label for r in rows], dtype=np.int64)


def regroup(rows: dict[str, list[ManifestRow]], spec: str) -> dict[str, list[ManifestRow]]:
    """Move whole subjects between the train and val splits, e.g. ``"xhy1:train,xhy2:val"``.

    For person-level checks and refits (a held-out training person as validation, or the
    validation person trained on once the recipe is fixed). Test subjects cannot be moved:
    the test split is never trained or tuned on."""
    moves: dict[str, str] = {}
    present = {r.subject for split in rows.values() for r in split}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        subject, _, target = pair.rpartition(":")
        if target not in rows or not subject:
            raise ConfigError(f"--regroup pair {pair!r}: expected <subject>:<{'|'.join(rows)}>")
        if subject not in present:
            raise ConfigError(
                f"--regroup subject {subject!r} is in none of the {'/'.join(rows)} splits"
                " (test subjects cannot be moved)"
            )
        moves[subject] = target
    out: dict[str, list[ManifestRow]] = {split: [] for split in rows}
    for split, split_rows in rows.items():
        for r in split_rows:
            out[moves.get(r.subject, split)].append(r)
    for split, split_rows in out.items():
        if not split_rows:
            raise ConfigError(f"--regroup {spec!r} leaves the {split} split empty")
    logger.info("regrouped %s: %s", spec, {s: len(v) for s, v in out.items()})
    return out

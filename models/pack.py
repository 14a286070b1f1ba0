"""Pack the training data small enough to move to a training machine, and unpack it there.

``python -m models.pack --img-size 64 --out var/pack`` writes:

- ``learning-emotions/``: the manifest (same columns) and every crop as it enters training at
  ``--img-size``: decoded, resized (INTER_AREA) and turned to BT.601 grey, stored as lossless
  WebP. ``models.data.read_rgb`` at the same size reads back exactly the grey pixels the
  original files give, so training, validation and test on the packed folder see the same
  inputs as on the original one (checked by ``tests/models/test_pack.py``).
- ``fer2013/``: the FER2013 training images tiled into mosaics stored as lossy WebP
  (``--fer-quality``, default 90: mean absolute error about 1.5 grey levels) plus their labels.
  Pre-training only; ``--unpack`` rebuilds ``fer2013/train.npz`` from them.

``python -m models.pack --unpack var/pack`` (on the other machine) then makes the folder a
data directory for ``EMO_DATA_DIR``. Greyscale only: a packed folder cannot train colour models.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from models.cli import entry_point
from models.data import FRAMING, load_grey, load_manifest, write_manifest_as
from models.errors import DataError
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

TILE = 48  # FER2013 side
GRID = 64  # tiles per mosaic side


def pack_crops(data_dir: Path, size: int, out: Path) -> int:
    """Every crop of ``data_dir`` as grey lossless WebP at ``size``; returns the row count."""
    rows = load_manifest(data_dir)  # validates labels and paths column
    grey = load_grey(rows, size)  # (N, size, size)
    (out / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i, (row, img) in enumerate(zip(rows, grey, strict=True)):
        name = f"images/{i:05d}.webp"
        ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101 = lossless
        if not ok:
            raise DataError(f"cannot encode crop {row.path} as WebP")
        (out / name).write_bytes(buf.tobytes())
        names.append(name)
    write_manifest_as(data_dir, out, names)
    if (data_dir / FRAMING).is_file():  # a reframed folder keeps its crop_scale
        shutil.copyfile(data_dir / FRAMING, out / FRAMING)
    return len(rows)


def pack_fer(fer_dir: Path, out: Path, quality: int) -> int:
    """FER2013 train images as WebP mosaics + labels; returns the image count."""
    path = fer_dir / "train.npz"
    if not path.is_file():
        raise DataError(f"FER2013 file {path} not found (expected images/labels arrays)")
    with np.load(path) as npz:
        images, labels = npz["images"], npz["labels"].astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (TILE, TILE):
        raise DataError(f"FER2013 file {path}: expected (N, 48, 48) images, got {images.shape}")
    out.mkdir(parents=True, exist_ok=True)
    per = GRID * GRID
    for k, start in enumerate(range(0, len(images), per)):
        chunk = images[start : start + per]
        full = np.zeros((per, TILE, TILE), dtype=np.uint8)
        full[: len(chunk)] = chunk
        grid = full.reshape(GRID, GRID, TILE, TILE).transpose(0, 2, 1, 3)
        mosaic = grid.reshape(GRID * TILE, GRID * TILE)
        ok, buf = cv2.imencode(".webp", mosaic, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise DataError(f"cannot encode FER2013 mosaic {k} as WebP")
        (out / f"mosaic-{k:03d}.webp").write_bytes(buf.tobytes())
    np.save(out / "labels.npy", labels)
    return len(images)


def unpack_fer(folder: Path) -> Path:
    """Rebuild ``folder/train.npz`` from the mosaics written by ``pack_fer``."""
    labels_path = folder / "labels.npy"
    if not labels_path.is_file():
        raise DataError(f"{labels_path} not found: {folder} is not a packed FER2013 folder")
    labels = np.load(labels_path)
    tiles = []
    for mosaic_path in sorted(folder.glob("mosaic-*.webp")):
        mosaic = cv2.imread(str(mosaic_path), cv2.IMREAD_GRAYSCALE)
        if mosaic is None or mosaic.shape != (GRID * TILE, GRID * TILE):
            raise DataError(f"mosaic {mosaic_path} cannot be decoded as a 64x64 grid of 48 px")
        tiles.append(mosaic.reshape(GRID, TILE, GRID, TILE).transpose(0, 2, 1, 3))
    if not tiles:
        raise DataError(f"no mosaic-*.webp files in {folder}")
    images = np.concatenate(tiles).reshape(-1, TILE, TILE)[: len(labels)]
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images for {len(labels)} labels")
    target = folder / "train.npz"
    np.savez(target, images=images, labels=labels)
    return target


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    settings = ModelsSettings()
    p = argparse.ArgumentParser(prog="python -m models.pack", description=__doc__)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("var/pack"))
    p.add_argument("--data", type=Path, default=settings.learning_emotions_dir)
    p.add_argument("--fer", type=Path, default=settings.fer2013_dir)
    p.add_argument("--fer-quality", type=int, default=90)
    p.add_argument("--unpack", type=Path, help="a packed folder to make usable as EMO_DATA_DIR")
    args = p.parse_args(argv)
    if args.unpack:
        logger.info("wrote %s", unpack_fer(args.unpack / "fer2013"))
        return 0
    n = pack_crops(args.data, args.img_size, args.out / "learning-emotions")
    m = pack_fer(args.fer, args.out / "fer2013", args.fer_quality)
    logger.info(
        "packed %d crops at %d px and %d FER2013 images into %s", n, args.img_size, m, args.out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How close sampled crops are to the training crops they were learnt from (memorisation).

No Inception weights can be loaded here, so sample quality is read two ways: the shipped
classifier's recall on the samples (run ``models.evaluate`` on the sample folder), and this
nearest-neighbour check. For every sampled crop of a class, the RMS pixel distance to the
nearest training crop of that class (or its mirror image) is compared with the same distance
for the real held-out crops of the class: a sample much closer than held-out crops ever get is
a near-copy of a training face, which synthetic data must not be. The median distance
between a training crop and its nearest *other* training crop is reported beside it: where a
class comes from video of a few people, that is how close two frames of one person are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.labels import LABELS
from models.augment.autoencoder import LatentAutoencoder
from models.data import load_grey, load_manifest
from models.settings import ModelsSettings


def _grey(rows: list[Any], size: int, cache: Path | None) -> torch.Tensor:
    """Rows' crops as grey float vectors (N, size*size) in [0, 1]."""
    grey = load_grey(rows, size, cache)  # (N, S, S)
    return torch.from_numpy(grey).float().div(255.0).flatten(1)  # (N, S*S)


def _nearest(queries: torch.Tensor, refs: torch.Tensor) -> np.ndarray:
    """RMS distance from each query row to its nearest reference row."""
    d = torch.cdist(queries, refs) / np.sqrt(queries.shape[1])  # (Q, R)
    return d.min(dim=1).values.numpy()


def _nearest_other(refs: torch.Tensor) -> np.ndarray:
    """For each of the first half of ``refs`` (crops; the second half is their mirror
    images), the RMS distance to the nearest crop other than itself and its mirror."""
    n = refs.shape[0] // 2
    d = torch.cdist(refs[:n], refs) / np.sqrt(refs.shape[1])  # (n, 2n)
    own = torch.arange(n)
    d[own, own] = d[own, own + n] = float("inf")
    return d.min(dim=1).values.numpy()


def nearest_neighbour_report(
    samples_dir: Path, data_dir: Path, size: int, held_out: str = "val"
) -> dict[str, Any]:
    """Per class: sample and held-out nearest-training distances, and near-copy share."""
    cache = ModelsSettings().cache_dir
    samples = load_manifest(samples_dir)
    train = load_manifest(data_dir, "train")
    real = load_manifest(data_dir, held_out)
    out: dict[str, Any] = {"img_size": size, "held_out_split": held_out, "per_class": {}}
    for label in sorted({r.label for r in samples}):
        s_rows = [r for r in samples if r.label == label]
        t = _grey([r for r in train if r.label == label], size, cache)
        side = int(np.sqrt(t.shape[1]))
        t = torch.cat([t, t.view(-1, side, side).flip(2).flatten(1)])  # + mirror images
        d_syn = _nearest(_grey(s_rows, size, None), t)
        h_rows = [r for r in real if r.label == label]
        d_real = _nearest(_grey(h_rows, size, cache), t) if h_rows else np.array([np.nan])
        floor = float(np.nanpercentile(d_real, 5))
        out["per_class"][LABELS[label]] = {
            "n_samples": len(s_rows),
            "n_held_out": len(h_rows),
            "sample_nn_median": round(float(np.median(d_syn)), 4),
            "held_out_nn_median": round(float(np.nanmedian(d_real)), 4),
            "held_out_nn_p5": round(floor, 4),
            "near_copy_share": round(float((d_syn < floor).mean()), 4),
            # another training crop of the same people (video frames): the identity floor
            "train_nn_median": round(float(np.median(_nearest_other(t))), 4),
        }
    return out


@torch.no_grad()
def reconstruction_report(
    ae: LatentAutoencoder, data_dir: Path, split: str = "val"
) -> dict[str, float]:
    """Per class: RMS pixel error (0-1 scale) of the autoencoder on the ``split`` crops.

    The sampled crops can be no sharper than this: it bounds what the latent DDPM can draw."""
    rows = load_manifest(data_dir, split)
    size = ae.cfg.img_size
    x = _grey(rows, size, ModelsSettings().cache_dir).view(-1, 1, size, size)  # (N, 1, S, S)
    rec = torch.cat([ae.decode(ae.encode(b * 2 - 1)[0]) for b in x.split(256)])
    err = ((rec + 1) / 2 - x).pow(2).flatten(1).mean(1).sqrt()  # (N,)
    labels = np.array([r.label for r in rows])
    return {LABELS[c]: round(float(err[labels == c].mean()), 4) for c in sorted(set(labels))}

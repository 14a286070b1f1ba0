"""Benchmark: ``python -m models.bench [--onnx PATH] [--repeats N]`` prints one JSON object.

- SUN saliency ms/face at batch 32 (112 px, the issue's target size, and 96 px): all three
  channels on RGB crops, and the greyscale path the model uses (intensity only, same map);
  against a baseline in the same run: the same separable DoG filters as depthwise
  convolutions (the straightforward implementation the matmul form replaced).
- The shipped ONNX model's faces/s at batch 32, saliency included (it is inside the graph),
  against the same model run one face at a time.
Inputs are real validation crops when the shared data is present (else noise, flagged).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.cli import entry_point
from models.data import load_images, load_manifest, normalise, to_grey_rgb
from models.errors import DataError
from models.evaluate import open_model
from models.saliency import N_CHANNELS, SunParams, SunSaliency, gaussian_kernel_1d
from models.settings import ModelsSettings

BATCH = 32


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def real_crops(size: int, n: int = BATCH) -> tuple[np.ndarray, bool]:
    """RGB uint8 (n, size, size, 3) validation crops, or noise when the data is absent."""
    try:
        rows = load_manifest(ModelsSettings().learning_emotions_dir, "val")[::7][:n]
        return load_images(rows, size), True
    except DataError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), False


def depthwise_dog(rgb: torch.Tensor, sigmas: tuple[float, ...]) -> torch.Tensor:
    """Baseline: the same DoG features via reflect pad + depthwise separable convolutions."""
    radius = math.ceil(3 * max(sigmas))
    k = torch.stack([gaussian_kernel_1d(s, radius) for s in sigmas])  # (S, K)
    n_s = len(sigmas)
    opp = rgb  # opponent transform is a 1x1 conv in both versions; omitted in both timings
    x = F.pad(opp, (radius, radius, 0, 0), mode="reflect")  # (B, 3, H, W+2r)
    x = F.conv2d(x, k.repeat(N_CHANNELS, 1).view(-1, 1, 1, k.shape[1]), groups=N_CHANNELS)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")  # (B, 3S, H+2r, W)
    x = F.conv2d(x, k.repeat(N_CHANNELS, 1).view(-1, 1, k.shape[1], 1), groups=N_CHANNELS * n_s)
    b, _, h, w = x.shape
    x = x.view(b, N_CHANNELS, n_s, h, w)  # (B, 3, S, H, W)
    return x[:, :, :-1] - x[:, :, 1:]  # (B, 3, S-1, H, W)


def bench_saliency(size: int, repeats: int) -> dict[str, Any]:
    """ms/face of SunSaliency at batch 32 vs the depthwise-conv baseline."""
    rgb, _ = real_crops(size)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    grey = torch.from_numpy(to_grey_rgb(rgb)).permute(0, 3, 1, 2).float() / 255.0
    sal = SunSaliency(SunParams(), size=size).eval()
    sal_grey = SunSaliency(SunParams(), size=size, grey=True).eval()
    with torch.no_grad():
        t_sal = timed(lambda: sal(x), repeats)
        t_grey = timed(lambda: sal_grey(grey), repeats)
        t_feat = timed(lambda: sal.features(x), repeats)
        t_base = timed(lambda: depthwise_dog(x, sal.params.sigmas), repeats)
    return {
        "size_px": size,
        "batch": BATCH,
        "ms_per_face": round(1000 * t_sal / BATCH, 4),
        "grey_input_ms_per_face": round(1000 * t_grey / BATCH, 4),
        "features_ms_per_face": round(1000 * t_feat / BATCH, 4),
        "baseline_depthwise_features_ms_per_face": round(1000 * t_base / BATCH, 4),
        "speedup_vs_baseline_features": round(t_base / t_feat, 2),
    }


def bench_onnx(onnx_path: Path, repeats: int) -> dict[str, Any]:
    """faces/s of the shipped ONNX at batch 32 vs one face at a time."""
    sess, side = open_model(onnx_path)
    rgb, _ = real_crops(side.input_size)
    x = normalise(rgb, side.mean, side.std, side.colour == "grey")
    feed = {side.input_name: x}
    t_batch = timed(lambda: sess.run(None, feed), repeats)

    def one_by_one() -> None:
        for i in range(len(x)):
            sess.run(None, {side.input_name: x[i : i + 1]})

    t_single = timed(one_by_one, max(1, repeats // 3))
    return {
        "onnx": str(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "saliency_in_graph": side.saliency.in_graph,
        "input_size": side.input_size,
        "batch": BATCH,
        "faces_per_s": round(BATCH / t_batch, 1),
        "baseline_one_face_at_a_time_faces_per_s": round(BATCH / t_single, 1),
        "speedup_vs_baseline": round(t_single / t_batch, 2),
    }


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Print the benchmark JSON on stdout."""
    settings = ModelsSettings()
    p = argparse.ArgumentParser(prog="python -m models.bench", description=__doc__)
    p.add_argument("--onnx", type=Path, default=settings.weights_dir / "learning_emotion.onnx")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    _, real = real_crops(32, 1)
    result: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m_before": round(os.getloadavg()[0], 2),
        "real_crops": real,
        "saliency": [bench_saliency(s, args.repeats) for s in (112, 96)],
        "targets": {"saliency_ms_per_face_112px": 2.0, "onnx_faces_per_s": 100.0},
    }
    result["onnx_model"] = bench_onnx(args.onnx, args.repeats) if args.onnx.is_file() else None
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

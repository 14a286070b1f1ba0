"""Export job: checkpoint -> ONNX + sidecar JSON, checked against PyTorch.

``python -m models.export [--checkpoint runs/.../best.pt] [--out models/weights/...onnx]``

Writes an ONNX graph (input ``image`` float32 (B, 3, H, W) normalised as the sidecar says,
greyscale as 3 identical channels; output ``probs`` (B, 6) softmax; dynamic batch; SUN saliency
inside the graph) and its sidecar JSON (``contract.sidecar.ModelSidecar``), then checks
itself: ONNX Runtime on real crops must match PyTorch within ``--tol`` (default 1e-4).

``--checkpoint A.pt --checkpoint B.pt ...`` exports a prediction ensemble (``models.ensemble``):
one graph whose ``probs`` are the mean of its members' probabilities, ``--flip`` also averages
each face's horizontal mirror. Members must share input size, normalisation and crop scale;
the sidecar's ``model`` is ``{"arch": "ensemble", "flip": ..., "members": [...]}`` and its
``checkpoint_sha256`` the hash of the members' hashes in order, so the worker reads it as any
other model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from torch import nn

from contract.labels import LABELS
from contract.sidecar import ModelSidecar, SaliencySpec, sha256_file, sidecar_path_for
from models.checkpoint import ckpt_crop_scale, file_sha256, model_from_checkpoint
from models.cli import entry_point
from models.data import load_images, load_manifest, normalise
from models.emotion import LearningEmotionNet
from models.ensemble import EnsembleProbs
from models.errors import DataError, ExportError
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

OPSET = 17
MAX_BYTES = 25 * 1024 * 1024
DEFAULT_NAME = "learning_emotion.onnx"


class WithSoftmax(nn.Module):
    """Logits model -> probabilities (B, 6)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Softmax over classes."""
        return torch.softmax(self.model(image), dim=1)  # (B, 6)


def probs_model(model: nn.Module) -> nn.Module:
    """A logits model wrapped to output probabilities; an ensemble already does."""
    return model if isinstance(model, EnsembleProbs) else WithSoftmax(model)


def input_spec(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(input size, mean, std) of a fusion model or baseline."""
    if isinstance(model, EnsembleProbs):
        return input_spec(model.members[0])
    if isinstance(model, LearningEmotionNet):
        return model.cfg.img_size, tuple(model.cfg.mean), tuple(model.cfg.std)
    return int(model.img_size), tuple(model.mean), tuple(model.std)  # type: ignore[arg-type]


def export_onnx(model: nn.Module, path: Path, size: int) -> None:
    """torch.onnx.export (TorchScript exporter) with a dynamic batch axis, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    dummy = torch.zeros(2, 3, size, size)
    try:
        torch.onnx.export(
            probs_model(model).eval(),
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["probs"],
            dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        tmp.replace(path)
    except Exception as exc:  # the exporter raises many types
        raise ExportError(f"ONNX export to {path} failed: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def store_weights_fp16(path: Path, min_elements: int = 1024) -> int:
    """Store large float32 initializers as float16 + a Cast back to float32 (in place).

    Compute stays float32 (ONNX Runtime folds the Casts when the session loads); only the
    file shrinks by about half. Returns the number of initializers converted.
    """
    model = onnx.load(str(path))
    graph = model.graph
    kept, casts, converted = [], [], 0
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) >= min_elements:
            arr = numpy_helper.to_array(init).astype(np.float16)
            half = numpy_helper.from_array(arr, name=f"{init.name}__fp16")
            kept.append(half)
            casts.append(
                helper.make_node(
                    "Cast",
                    [half.name],
                    [init.name],
                    to=onnx.TensorProto.FLOAT,
                    name=f"{init.name}__cast",
                )
            )
            converted += 1
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    tmp = path.with_name(f".{path.name}.fp16-{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return converted


def parity_inputs(size: int, mean: tuple[float, ...], std: tuple[float, ...], n: int) -> np.ndarray:
    """``n`` real validation crops (greyscale, normalised) from the shared data."""
    data_dir = ModelsSettings().learning_emotions_dir
    try:
        rows = load_manifest(data_dir, "val")
    except DataError as exc:
        raise ExportError(f"parity check needs real crops: {exc}") from exc
    pick = np.random.default_rng(0).permutation(len(rows))[:n]
    rgb = load_images([rows[i] for i in pick], size)
    return normalise(rgb, mean, std, grey=True)


def check_parity(model: nn.Module, onnx_path: Path, x: np.ndarray, tol: float) -> float:
    """Max |ORT - PyTorch| over the batch (raises ExportError above ``tol``)."""
    with torch.no_grad():
        ref = probs_model(model).eval()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["probs"], {"image": x})[0]
    err = float(np.abs(got - ref).max())
    if not np.isfinite(err) or err > tol:
        raise ExportError(f"ONNX {onnx_path} differs from PyTorch by {err:.2e} > {tol:.0e}")
    return err


def saliency_spec(models: Sequence[nn.Module]) -> SaliencySpec:
    """SUN inside the graph if any member uses it (its fitted parameters; one list entry per
    such member if they differ), else none."""
    params = [
        dict(m.cfg.sun)
        for m in models
        if isinstance(m, LearningEmotionNet) and m.cfg.fusion != "none"
    ]
    if not params:
        return SaliencySpec(method="none", in_graph=False, params={})
    same = all(p == params[0] for p in params)
    return SaliencySpec(
        method="sun", in_graph=True, params=params[0] if same else {"members": params}
    )


def build_sidecar(
    model: nn.Module,
    ckpts: Sequence[dict[str, Any]],
    onnx_path: Path,
    ckpt_paths: Sequence[Path],
) -> ModelSidecar:
    """The sidecar describing ``onnx_path`` (one checkpoint, or an ensemble's members)."""
    size, mean, std = input_spec(model)
    hashes = [file_sha256(p) for p in ckpt_paths]
    if isinstance(model, EnsembleProbs):
        members = list(model.members)
        described: dict[str, object] = {
            "arch": "ensemble",
            "flip": model.flip,
            "members": [
                {"arch": c["arch"], **c["model_args"], "checkpoint_sha256": h}
                for c, h in zip(ckpts, hashes, strict=True)
            ],
        }
        ckpt_hash = hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    else:
        members = [model]
        described = {"arch": ckpts[0]["arch"], **ckpts[0]["model_args"]}
        ckpt_hash = hashes[0]
    return ModelSidecar(
        onnx_file=onnx_path.name,
        onnx_sha256=sha256_file(onnx_path),
        checkpoint_sha256=ckpt_hash,
        input_size=size,
        colour="grey",
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        labels=LABELS,
        saliency=saliency_spec(members),
        opset=OPSET,
        crop_scale=ckpt_crop_scale(ckpts[0]),
        model=described,
    )


def load_for_export(
    ckpt_paths: Sequence[Path], flip: bool
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """One checkpoint's model, or (several, or ``flip``) an ``EnsembleProbs`` of them; members
    must agree on input size, normalisation and crop scale (else ExportError naming one)."""
    if not ckpt_paths:
        raise ExportError("export needs at least one checkpoint")
    loaded = [model_from_checkpoint(p) for p in ckpt_paths]
    models, ckpts = [m for m, _ in loaded], [c for _, c in loaded]
    if len(models) == 1 and not flip:
        return models[0], ckpts
    first = (input_spec(models[0]), ckpt_crop_scale(ckpts[0]))
    for path, m, c in zip(ckpt_paths, models, ckpts, strict=True):
        got = (input_spec(m), ckpt_crop_scale(c))
        if got != first:
            raise ExportError(
                f"ensemble member {path} has (input size, mean, std), crop scale {got}; "
                f"expected {first} as in {ckpt_paths[0]}"
            )
    return EnsembleProbs(models, flip=flip).eval(), ckpts


def export(
    ckpt_paths: Path | Sequence[Path],
    onnx_path: Path,
    *,
    flip: bool = False,
    tol: float = 1e-4,
    n_parity: int = 32,
    fp16_weights: bool = False,
    fp16_tol: float = 5e-3,
) -> ModelSidecar:
    """Checkpoint(s) -> ONNX + sidecar, parity-checked on real crops.

    Several checkpoints (or ``flip``) make a prediction ensemble (see the module docstring).
    The float32 graph must match PyTorch within ``tol``; with ``fp16_weights`` the stored
    weights are then halved and that graph must match within ``fp16_tol``.
    """
    paths = [ckpt_paths] if isinstance(ckpt_paths, Path) else list(ckpt_paths)
    model, ckpts = load_for_export(paths, flip)
    size, mean, std = input_spec(model)
    export_onnx(model, onnx_path, size)
    x = parity_inputs(size, mean, std, n_parity)
    err = check_parity(model, onnx_path, x, tol)
    if fp16_weights:
        n = store_weights_fp16(onnx_path)
        err16 = check_parity(model, onnx_path, x, fp16_tol)
        logger.info("stored %d initializers as fp16: parity max|Δ| %.2e", n, err16)
    nbytes = onnx_path.stat().st_size
    if nbytes > MAX_BYTES:
        logger.warning("ONNX %s is %.1f MiB (> 25 MiB budget)", onnx_path, nbytes / 2**20)
    sidecar = build_sidecar(model, ckpts, onnx_path, paths)
    side_path = sidecar_path_for(onnx_path)
    tmp = side_path.with_name(f".{side_path.name}.tmp")
    tmp.write_text(json.dumps(sidecar.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(side_path)
    logger.info(
        "exported %s (%.2f MiB, fp32 parity max|Δ| %.2e on %d real crops) + %s",
        onnx_path,
        nbytes / 2**20,
        err,
        n_parity,
        side_path,
    )
    return sidecar


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    settings = ModelsSettings()
    p = argparse.ArgumentParser(prog="python -m models.export", description=__doc__)
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=None,
        help="a run's best.pt (default runs/shipped/best.pt); repeat it for an ensemble",
    )
    p.add_argument("--flip", action="store_true", help="also average each face's mirror image")
    p.add_argument("--out", type=Path, default=settings.weights_dir / DEFAULT_NAME)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument(
        "--weights",
        choices=["fp32", "fp16"],
        default="fp16",
        help="stored weight precision (compute is fp32 either way)",
    )
    args = p.parse_args(argv)
    paths = args.checkpoint or [settings.runs_dir / "shipped" / "best.pt"]
    export(paths, args.out, flip=args.flip, tol=args.tol, fp16_weights=args.weights == "fp16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Recover a training checkpoint from an exported ONNX model and its sidecar.

``python -m models.recover [--onnx models/weights/learning_emotion.onnx] --out runs/X/init.pt``

The shipped ONNX file is the only copy of the shipped weights; this turns it back into a
self-describing checkpoint, so that training can continue from the shipped model
(``python -m models.train --init ...``, e.g. fine-tuning on a school's own labelled crops).

How: the sidecar's ``model`` block rebuilds the network; a copy with random weights is exported
by the same exporter, and every weight is located in that copy's graph by its value — under its
own name, transposed (linear layers become MatMul constants), or, for Swin's relative position
bias tables, gathered into the per-window bias the exporter folds. The shipped graph has the
same constants under the same names, so their values are read back into the weights. A conv
followed by BatchNorm (the conv stem) is one folded conv in the graph: it comes back as that
folded conv and an identity BatchNorm that adds the folded bias (the same function in eval
mode; the split between conv and BatchNorm scale is not in the file, so fine-tuning from it
starts with BatchNorm's scale 1). Weights
stored as fp16 come back as those fp16 values. The result is checked: PyTorch with the
recovered weights must match ONNX Runtime on real crops within ``--tol``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from contract.sidecar import ModelSidecar, SidecarError, sidecar_path_for
from models.checkpoint import build_model, model_args_of, save_checkpoint
from models.cli import entry_point
from models.errors import ExportError, RecoveryError
from models.export import check_parity, export_onnx, input_spec, parity_inputs
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

FP16_SUFFIX = "__fp16"  # models.export.store_weights_fp16 names halved constants so


def graph_constants(path: Path) -> dict[str, np.ndarray]:
    """Initializers of an ONNX file as float32/int arrays, under their pre-fp16 names."""
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise RecoveryError(f"ONNX model {path} cannot be read: {exc}") from exc
    out: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        name = init.name.removesuffix(FP16_SUFFIX)
        out[name] = arr.astype(np.float32) if arr.dtype == np.float16 else arr
    return out


def _key(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=np.float32).tobytes()


def _rel_pos_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Swin attention modules (state-dict prefix -> module) that own a bias table."""
    return {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(getattr(mod, "relative_position_bias_table", None), nn.Parameter)
    }


def _rel_index(mod: nn.Module) -> torch.Tensor:
    """Swin's (N, N) relative position index buffer of an attention module."""
    return mod.get_buffer("relative_position_index")


def _folded_bias(mod: nn.Module, table: torch.Tensor) -> torch.Tensor:
    """The (heads, N, N) bias that ``table`` becomes inside a window (timm's gather)."""
    index = _rel_index(mod)
    n = int(index.shape[0])
    return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)


def _unfold_bias(mod: nn.Module, folded: np.ndarray, fallback: torch.Tensor) -> torch.Tensor:
    """Invert ``_folded_bias``: scatter the (1, heads, N, N) constant back into a table."""
    heads = folded.shape[-3]
    rows = torch.tensor(folded.reshape(heads, -1)).t()  # (N*N, heads)
    table = fallback.clone()
    table[_rel_index(mod).view(-1)] = rows
    return table


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, nn.Conv2d, str, nn.BatchNorm2d]]:
    """(conv name, conv, BatchNorm name, BatchNorm) for each BatchNorm right after a conv in a
    Sequential: the exporter folds each such pair into one conv with a bias."""
    pairs = []
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        mods = list(seq.named_children())
        for (c_name, conv), (b_name, bn) in itertools.pairwise(mods):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                pre = f"{seq_name}." if seq_name else ""
                pairs.append((pre + c_name, conv, pre + b_name, bn))
    return pairs


def _find_close(fresh: dict[str, np.ndarray], value: np.ndarray) -> str | None:
    """The one float constant of ``fresh`` that equals ``value`` to float32 rounding."""
    hits = [
        k
        for k, v in fresh.items()
        if v.dtype == np.float32 and v.shape == value.shape and np.allclose(v, value, 1e-5, 1e-8)
    ]
    return hits[0] if len(hits) == 1 else None


def locate_folded(
    model: nn.Module, fresh: dict[str, np.ndarray]
) -> list[tuple[str, nn.Conv2d, str, nn.BatchNorm2d, str, str]]:
    """(conv name, conv, BatchNorm name, BatchNorm, folded weight constant, folded bias
    constant) in ``fresh``'s graph for each conv + BatchNorm pair the exporter folded."""
    out = []
    for conv_name, conv, bn_name, bn in _conv_bn_pairs(model):
        var = cast(torch.Tensor, bn.running_var)
        mean = cast(torch.Tensor, bn.running_mean)
        scale = (bn.weight / torch.sqrt(var + bn.eps)).detach()
        weight = (conv.weight.detach() * scale.view(-1, 1, 1, 1)).numpy()
        bias = (bn.bias.detach() - mean * scale).numpy()
        if conv.bias is not None:
            bias = bias + (conv.bias.detach() * scale).numpy()
        w_const, b_const = _find_close(fresh, weight), _find_close(fresh, bias)
        if w_const is not None and b_const is not None:
            out.append((conv_name, conv, bn_name, bn, w_const, b_const))
    return out


def locate(
    model: nn.Module, fresh: dict[str, np.ndarray], prefix: str, tables: dict[str, nn.Module]
) -> dict[str, Any]:
    """For each parameter: (constant name, how it is stored) in ``fresh``'s graph, or None
    for a weight the graph does not use (e.g. the local branch's final norm). ``tables``:
    ``_rel_pos_modules(model)``."""
    by_value = {_key(v): k for k, v in fresh.items() if v.dtype == np.float32}
    where: dict[str, Any] = {}
    for name, param in model.named_parameters():
        value = param.detach().numpy()
        if prefix + name in fresh:
            where[name] = (prefix + name, "same")
        elif value.ndim == 2 and _key(value.T) in by_value:
            where[name] = (by_value[_key(value.T)], "transposed")
        elif name.endswith(".relative_position_bias_table"):
            mod_name = name.removesuffix(".relative_position_bias_table")
            folded = _folded_bias(tables[mod_name], param.detach()).numpy()
            where[name] = (
                (by_value[_key(folded)], "rel_pos_bias") if _key(folded) in by_value else None
            )
        else:
            where[name] = None
    return where


def recover_model(onnx_path: Path) -> tuple[nn.Module, ModelSidecar]:
    """The sidecar's network with the ONNX file's weights (eval mode)."""
    try:
        sidecar = ModelSidecar.load(sidecar_path_for(onnx_path))
    except SidecarError as exc:
        raise RecoveryError(str(exc)) from exc
    args = dict(sidecar.model)
    arch = str(args.pop("arch", ""))
    if not arch:
        raise RecoveryError(f"sidecar of {onnx_path} has no model architecture ('model.arch')")
    if arch == "ensemble":
        members = args.get("members")
        n = len(members) if isinstance(members, list) else "several"
        raise RecoveryError(
            f"{onnx_path} is an ensemble of {n} models; recover "
            "works on single-model exports (export and recover each member on its own)"
        )
    model = build_model(arch, args).eval()
    default = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # distinct random values, so that each constant is found by value
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        export_onnx(model, probe, input_spec(model)[0])
        fresh = graph_constants(probe)
    shipped = graph_constants(onnx_path)
    if set(fresh) != set(shipped):
        raise RecoveryError(
            f"ONNX model {onnx_path} was not exported by this code's exporter: "
            f"{len(set(fresh) ^ set(shipped))} of its constants differ in name from a fresh "
            f"export of {arch} (was it exported with another torch version?)"
        )
    model.load_state_dict(read_weights(model, fresh, shipped, default))
    return model, sidecar


def read_weights(
    model: nn.Module,
    fresh: dict[str, np.ndarray],
    shipped: dict[str, np.ndarray],
    default: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``model``'s state dict with each weight read from ``shipped`` where ``fresh`` has it."""
    tables = _rel_pos_modules(model)
    where = locate(model, fresh, "model.", tables)
    state = model.state_dict()
    for conv_name, conv, bn_name, bn, w_const, b_const in locate_folded(model, fresh):
        state[f"{conv_name}.weight"] = torch.tensor(shipped[w_const]).reshape(conv.weight.shape)
        if conv.bias is not None:
            state[f"{conv_name}.bias"] = torch.zeros_like(conv.bias)
        state[f"{bn_name}.weight"] = torch.ones_like(bn.weight)
        state[f"{bn_name}.bias"] = torch.tensor(shipped[b_const]).reshape(bn.bias.shape)
        state[f"{bn_name}.running_mean"] = torch.zeros_like(bn.weight)
        state[f"{bn_name}.running_var"] = torch.full_like(bn.weight, 1.0 - bn.eps)
        names = (f"{conv_name}.weight", f"{conv_name}.bias", f"{bn_name}.weight", f"{bn_name}.bias")
        for name in names:  # set here from the fold, not read one by one below
            where.pop(name, None)
    unused = [name for name, found in where.items() if found is None]
    logger.info(
        "%d weights not used by the graph keep their initial values: %s", len(unused), unused
    )
    for name, found in where.items():
        if found is None:  # not in the graph: cannot matter for its output (parity checks it)
            state[name] = default[name]
            continue
        const, how = found
        value = shipped[const].T if how == "transposed" else shipped[const]
        if how == "rel_pos_bias":
            mod = tables[name.removesuffix(".relative_position_bias_table")]
            state[name] = _unfold_bias(mod, value, state[name])
        else:
            state[name] = torch.tensor(value).reshape(state[name].shape)
    return state


def recover(onnx_path: Path, out: Path, *, tol: float = 1e-4, n_parity: int = 32) -> Path:
    """ONNX + sidecar -> checkpoint at ``out`` (parity-checked on real crops)."""
    model, sidecar = recover_model(onnx_path)
    size, mean, std = input_spec(model)
    try:
        err = check_parity(model, onnx_path, parity_inputs(size, mean, std, n_parity), tol)
    except ExportError as exc:
        raise RecoveryError(f"recovered weights do not reproduce {onnx_path}: {exc}") from exc
    arch = str(sidecar.model["arch"])
    save_checkpoint(
        out,
        {
            "arch": arch,
            "model_args": model_args_of(model),
            "model": model.state_dict(),
            "num_classes": len(sidecar.labels),
            "crop_scale": sidecar.crop_scale,
            "phase": "finetune",
            "recovered_from": {
                "onnx": str(onnx_path),
                "onnx_sha256": sidecar.onnx_sha256,
                "checkpoint_sha256": sidecar.checkpoint_sha256,
                "parity_max_abs": err,
            },
        },
    )
    logger.info(
        "recovered %s -> %s (max|Δprob| %.2e on %d real crops)", onnx_path, out, err, n_parity
    )
    return out


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    settings = ModelsSettings()
    p = argparse.ArgumentParser(prog="python -m models.recover", description=__doc__)
    p.add_argument("--onnx", type=Path, default=settings.weights_dir / "learning_emotion.onnx")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args(argv)
    recover(args.onnx, args.out, tol=args.tol)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Model soup: average the weights of fine-tuned models that share one starting point.

``python -m models.soup --checkpoints A.pt B.pt ... [--greedy] [--weights W ...] --out SOUP.pt``

Wortsman et al. 2022 ("Model soups"): models fine-tuned from the same initial weights with
different seeds or augmentations usually lie in one basin of the loss, so the average of their
weights is itself a good model, and often a more robust one under distribution shift than any
single ingredient, at the cost of one model (same graph, same size, same speed). Two recipes:

- uniform (default): the (optionally ``--weights``-weighted) mean of every ingredient. With an
  ingredient that is the common starting point, this is WiSE-FT (Wortsman et al. 2022b):
  interpolation between the initial and the fine-tuned weights.
- ``--greedy``: ingredients sorted by their macro-F1 on ``--split`` (default ``val``; never
  ``test``), each kept only if the soup with it scores at least as well as without it.

The result is an ordinary uncalibrated checkpoint (``python -m models.calibrate`` and
``python -m models.export`` take it) that records its ingredients and their scores under
``soup``. Calibrated checkpoints are refused: their folded-in offsets would be averaged too;
calibrate the soup instead.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.calibrate import batch_logits, split_inputs
from models.checkpoint import build_model, ckpt_crop_scale, load_checkpoint, save_checkpoint
from models.cli import entry_point
from models.data import check_framing
from models.errors import CheckpointError
from models.metrics import macro_f1
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

State = dict[str, torch.Tensor]


def average_states(states: Sequence[State], weights: Sequence[float] | None = None) -> State:
    """Weighted mean of state dicts of one architecture (weights normalised to sum 1).

    Floating tensors are averaged; integer buffers (e.g. batch counters) are taken from the
    first state."""
    if not states:
        raise CheckpointError("a soup needs at least one ingredient")
    w = [1.0] * len(states) if weights is None else _checked_weights(weights, len(states))
    total = sum(w)
    first = states[0]
    out: State = {}
    for key, ref in first.items():
        if not ref.is_floating_point():
            out[key] = ref.clone()
            continue
        acc = torch.zeros_like(ref, dtype=torch.float64)
        for state, v in zip(states, w, strict=True):
            acc += state[key].to(torch.float64) * (v / total)
        out[key] = acc.to(ref.dtype)
    return out


def _checked_weights(weights: Sequence[float], n: int) -> list[float]:
    w = [float(v) for v in weights]
    if len(w) != n or any(v < 0 for v in w) or sum(w) <= 0:
        raise CheckpointError(
            f"soup weights {w} must be one non-negative number per ingredient ({n}), not all 0"
        )
    return w


def load_ingredients(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[State]]:
    """Read the ingredient checkpoints; all must rebuild the same model and be uncalibrated."""
    payloads: list[dict[str, Any]] = []
    states: list[State] = []
    for path in paths:
        ckpt = load_checkpoint(path)
        if "calibration" in ckpt:
            raise CheckpointError(
                f"checkpoint {path} is calibrated: soup its uncalibrated source, "
                "then calibrate the soup"
            )
        if payloads and (ckpt["arch"], ckpt["model_args"], ckpt_crop_scale(ckpt)) != (
            payloads[0]["arch"],
            payloads[0]["model_args"],
            ckpt_crop_scale(payloads[0]),
        ):
            raise CheckpointError(
                f"checkpoint {path} is a different model from {paths[0]}: cannot average them"
            )
        state = ckpt["model"]
        ref = states[0] if states else state
        if state.keys() != ref.keys() or any(state[k].shape != ref[k].shape for k in ref):
            raise CheckpointError(f"checkpoint {path} weights do not match those of {paths[0]}")
        payloads.append(ckpt)
        states.append(state)
    return payloads, states


def val_scorer(model: nn.Module, data_dir: Path, split: str) -> Callable[[State], float]:
    """``score(state)``: macro-F1 on ``split`` of ``model`` with that state's weights (the
    split's crops are read once, not at every trial)."""
    x, labels = split_inputs(model, data_dir, split)

    def score(state: State) -> float:
        model.load_state_dict(state)
        return macro_f1(labels, batch_logits(model.eval(), x).argmax(1))

    return score


def greedy_soup(
    paths: Sequence[Path], states: Sequence[State], score: Callable[[State], float]
) -> tuple[list[int], dict[str, Any]]:
    """Indices of the greedy soup's ingredients and a record of every ``score``."""
    alone = [score(s) for s in states]
    order = sorted(range(len(states)), key=lambda i: -alone[i])
    kept = [order[0]]
    best = alone[order[0]]
    trials = []
    for i in order[1:]:
        trial = score(average_states([states[j] for j in [*kept, i]]))
        trials.append({"add": str(paths[i]), "macro_f1": trial, "kept": trial >= best})
        logger.info("greedy soup: + %s -> %.4f (best %.4f)", paths[i], trial, best)
        if trial >= best:
            kept.append(i)
            best = trial
    record = {
        "alone": {str(p): a for p, a in zip(paths, alone, strict=True)},
        "trials": trials,
        "best": best,
    }
    return kept, record


def make_soup(
    paths: Sequence[Path],
    out: Path,
    data_dir: Path,
    *,
    split: str = "val",
    greedy: bool = False,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Average ``paths`` (all, weighted, or greedily chosen on ``split``) into ``out``."""
    if split == "test":
        raise CheckpointError(
            "choosing soup ingredients on the test split would tune on it: use val"
        )
    if greedy and weights is not None:
        raise CheckpointError("--greedy and --weights exclude each other")
    if weights is not None:
        weights = _checked_weights(weights, len(paths))
    payloads, states = load_ingredients(paths)
    check_framing(data_dir, ckpt_crop_scale(payloads[0]), f"checkpoint {paths[0]}")
    score = val_scorer(build_model(payloads[0]["arch"], payloads[0]["model_args"]), data_dir, split)
    record: dict[str, Any] = {"method": "greedy" if greedy else "uniform", "split": split}
    idx = list(range(len(paths)))
    if greedy:
        idx, record["greedy"] = greedy_soup(paths, states, score)
    record["ingredients"] = [str(paths[i]) for i in idx]
    record["weights"] = (
        [float(weights[i]) for i in idx] if weights is not None else [1.0] * len(idx)
    )
    soup = average_states([states[i] for i in idx], record["weights"])
    record["macro_f1"] = record["greedy"]["best"] if greedy else score(soup)
    base = payloads[idx[0]]
    payload: dict[str, Any] = {
        k: base[k] for k in ("arch", "model_args", "train_config", "crop_scale") if k in base
    }
    payload |= {"model": soup, "soup": record}
    aux = [payloads[i]["aux_head"] for i in idx if payloads[i].get("aux_head") is not None]
    if len(aux) == len(idx):  # --fer-aux heads, averaged like the rest
        payload["aux_head"] = average_states(aux, record["weights"])
    save_checkpoint(out, payload)
    return record


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m models.soup", description=__doc__)
    p.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=ModelsSettings().learning_emotions_dir)
    p.add_argument("--split", default="val")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--weights", type=float, nargs="+")
    args = p.parse_args(argv)
    record = make_soup(
        args.checkpoints,
        args.out,
        args.data,
        split=args.split,
        greedy=args.greedy,
        weights=args.weights,
    )
    logger.info("wrote %s: %s", args.out, json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Classification metrics for the evaluation report (labels in contract order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from contract.labels import LABELS


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> np.ndarray:
    """Rows true, columns predicted."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(LABELS)) -> float:
    """Macro-F1 over the labels present in ``y_true`` (of ``n`` classes)."""
    cm = confusion(y_true, y_pred, n)
    return float(np.mean([_prf(cm, k)[2] for k in np.unique(y_true)]))


def _prf(cm: np.ndarray, k: int) -> tuple[float, float, float]:
    tp = float(cm[k, k])
    pred = float(cm[:, k].sum())
    true = float(cm[k, :].sum())
    p = tp / pred if pred else 0.0
    r = tp / true if true else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def report(y_true: np.ndarray, y_pred: np.ndarray, sources: Sequence[str]) -> dict[str, Any]:
    """The evaluation report (keys fixed by issue 3)."""
    cm = confusion(y_true, y_pred)
    present = [int(k) for k in np.unique(y_true)]
    per_class = {}
    for k, label in enumerate(LABELS):
        p, r, f = _prf(cm, k)
        per_class[label] = {"precision": p, "recall": r, "f1": f, "support": int(cm[k].sum())}
    src = np.asarray(sources)
    per_source = {}
    for s in sorted(set(sources)):
        m = src == s
        per_source[s] = {
            "accuracy": float((y_true[m] == y_pred[m]).mean()),
            "macro_f1": macro_f1(y_true[m], y_pred[m]),
            "support": int(m.sum()),
        }
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "mean_class_accuracy": float(np.mean([_prf(cm, k)[1] for k in present])),
        "macro_f1": float(np.mean([_prf(cm, k)[2] for k in present])),
        "per_class": per_class,
        "per_source": per_source,
        "confusion_matrix": cm.tolist(),
        "n": len(y_true),
    }

"""Person-specific normalisation (PSN) of a model's class scores, scored on a manifest split.

    python -m models.personnorm (--checkpoint PT | --onnx PATH) --data DIR [--split NAME]
        --reference-split NAME [--reference-source S] [--only-source S] [--min-faces 20]
        [--out R.json] [--save-scores S.npz]

After Baltrusaitis, Mahmoud and Robinson (2015, person-specific normalisation for action unit
detection): a face is read against the same person's typical face. A person is a manifest
``(source, subject)``. For every person of the scored split with at least ``--min-faces`` rows
(and of ``--only-source`` when given), the per-class median of their log-probabilities is moved
onto a reference vector: the mean, over the reference persons (those of ``--reference-split``,
and of ``--reference-source`` when given, with at least ``--min-faces`` rows), of their own
per-class medians. Everyone else keeps their scores. Labels are never used by the
normalisation (a live worker could take the same median from a tracked student's history).

Measured in the twenty-ninth session (model card): with the training people's medians as the
reference it **lowered** webcam-class macro-F1 for the unseen people on both pre-registered
runs, so the worker does not offer it.

It only makes sense where a person shows several states. A person recorded in one state only
(a DAiSEE clip rated engaged throughout) is pulled towards the reference mix, which is the
price of the method, and the report shows it per source.

The report has the keys of ``models.evaluate`` for the normalised predictions, plus ``plain``
(the same model without PSN: macro-F1, per-source macro-F1, per-class F1, confusion matrix)
and ``psn`` (the settings, the reference vector, and each normalised person's face count and
offset).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from contract.labels import LABELS
from models.cli import entry_point
from models.data import ManifestRow, check_framing, load_images, load_manifest
from models.ensemble import member_probs, summary
from models.errors import DataError
from models.files import write_text_atomic
from models.metrics import confusion, macro_f1, report

logger = logging.getLogger(__name__)

EPS = 1e-8  # floor under a probability before its log


def person_keys(rows: Sequence[ManifestRow]) -> np.ndarray:
    """One key per row naming its person: ``source/subject``."""
    return np.array([f"{r.source}/{r.subject}" for r in rows])


def person_medians(
    scores: np.ndarray, persons: np.ndarray, min_faces: int, eligible: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-class median score (6,) of every person with >= ``min_faces`` rows among the
    ``eligible`` rows (all rows if None)."""
    mask = np.ones(len(persons), bool) if eligible is None else eligible
    out = {}
    for key in np.unique(persons[mask]):
        rows = person_rows(persons, str(key), mask)
        if rows.sum() >= min_faces:
            out[str(key)] = np.median(scores[rows], axis=0)
    return out


def person_rows(persons: np.ndarray, key: str, eligible: np.ndarray | None) -> np.ndarray:
    """Mask of ``key``'s rows among the ``eligible`` rows (all rows if None)."""
    rows = persons == key
    return rows if eligible is None else rows & eligible


def reference_vector(medians: dict[str, np.ndarray], what: str) -> np.ndarray:
    """The mean of the reference persons' medians (6,); DataError when there is none."""
    if not medians:
        raise DataError(f"no reference person in {what}: lower --min-faces or pick another split")
    return np.mean(np.stack(list(medians.values())), axis=0)


def normalise(
    scores: np.ndarray,
    persons: np.ndarray,
    reference: np.ndarray,
    min_faces: int,
    eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Scores with each eligible person's median moved onto ``reference``, and per person
    the face count and offset that was added."""
    out = scores.copy()
    moved: dict[str, dict[str, Any]] = {}
    for key, med in person_medians(scores, persons, min_faces, eligible).items():
        rows = person_rows(persons, key, eligible)
        offset = reference - med
        out[rows] += offset
        moved[key] = {"faces": int(rows.sum()), "offset": [round(float(v), 4) for v in offset]}
    return out, moved


def mix_matched_offset(
    scores: np.ndarray,
    labels: np.ndarray,
    proportions: dict[int, float],
    reference: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Diagnostic (uses labels): the PSN offset of one person computed from a random
    subsample of their faces whose class mix equals ``proportions`` (label -> share), as
    large as their faces allow. Tells a person-level offset from a mere match of label mixes."""
    have = {k: np.flatnonzero(labels == k) for k in proportions}
    n = min(len(idx) / proportions[k] for k, idx in have.items() if proportions[k] > 0)
    picked = [
        rng.choice(idx, size=min(len(idx), round(proportions[k] * n)), replace=False)
        for k, idx in have.items()
        if proportions[k] > 0
    ]
    sample = np.concatenate(picked)
    if len(sample) < 2:
        raise DataError(f"too few faces ({len(sample)}) to match the mix {proportions}")
    return np.asarray(reference - np.median(scores[sample], axis=0))


def log_scores(
    rows: Sequence[ManifestRow], data_dir: Path, *, checkpoint: Path | None, onnx: Path | None
) -> np.ndarray:
    """log p (N, 6) of one model on ``rows``: a run's checkpoint or an exported ONNX."""
    if checkpoint is not None:
        probs = member_probs(checkpoint, rows, flip=False)
    else:
        from models.evaluate import open_model, predict

        assert onnx is not None
        sess, sidecar = open_model(onnx)
        check_framing(data_dir, sidecar.crop_scale, f"model {onnx}")
        probs = predict(sess, sidecar, load_images(rows, sidecar.input_size))
    return np.log(np.maximum(probs, EPS))


def source_mask(rows: Sequence[ManifestRow], source: str | None, what: str) -> np.ndarray:
    """Rows of ``source`` (all rows if None); DataError when the source has no row."""
    mask = np.array([source is None or r.source == source for r in rows])
    if not mask.any():
        have = sorted({r.source for r in rows})
        raise DataError(f"source {source!r} has no row in {what} (sources there: {have})")
    return mask


def psn_report(
    data_dir: Path,
    split: str | None,
    reference_split: str,
    *,
    checkpoint: Path | None = None,
    onnx: Path | None = None,
    reference_source: str | None = None,
    only_source: str | None = None,
    min_faces: int = 20,
    out: Path,
    save_scores: Path | None = None,
) -> dict[str, Any]:
    """Score one model on ``split`` with and without PSN and write the report to ``out``."""
    if (checkpoint is None) == (onnx is None):
        raise DataError("give exactly one model: --checkpoint PT or --onnx PATH")
    if min_faces < 2:
        raise DataError(
            f"--min-faces must be >= 2 (a median of one face is that face), not {min_faces}"
        )
    rows = load_manifest(data_dir, split)
    ref_rows = load_manifest(data_dir, reference_split)
    what = f"{data_dir} split {reference_split!r}"
    ref_mask = source_mask(ref_rows, reference_source, what)
    eligible = source_mask(rows, only_source, f"{data_dir} split {split!r}")
    # One model load and one pass over both row sets (the model scores each face alone).
    both = log_scores([*rows, *ref_rows], data_dir, checkpoint=checkpoint, onnx=onnx)
    scores, ref_scores = both[: len(rows)], both[len(rows) :]
    ref_medians = person_medians(ref_scores, person_keys(ref_rows), min_faces, ref_mask)
    reference = reference_vector(
        ref_medians, what + (f" source {reference_source!r}" if reference_source else "")
    )
    persons = person_keys(rows)
    normed, moved = normalise(scores, persons, reference, min_faces, eligible)
    labels = np.array([r.label for r in rows])
    sources = [r.source for r in rows]
    rep = report(labels, normed.argmax(1), sources)
    rep["plain"] = summary(report(labels, scores.argmax(1), sources))
    rep["psn"] = {
        "model": str(checkpoint or onnx),
        "split": split,
        "reference_split": reference_split,
        "reference_source": reference_source,
        "only_source": only_source,
        "min_faces": min_faces,
        "reference_persons": sorted(ref_medians),
        "reference": dict(zip(LABELS, (round(float(v), 4) for v in reference), strict=True)),
        "persons": moved,
    }
    write_text_atomic(out, json.dumps(rep, indent=2) + "\n")
    if save_scores is not None:
        np.savez(
            save_scores,
            scores=scores,
            persons=persons,
            labels=labels,
            sources=np.array(sources),
            ref_scores=ref_scores,
            ref_persons=person_keys(ref_rows),
            ref_labels=np.array([r.label for r in ref_rows]),
            ref_sources=np.array([r.source for r in ref_rows]),
        )
    logger.info(
        "%s macro-F1 %.4f with PSN (%d persons), %.4f without -> %s",
        split or "all",
        rep["macro_f1"],
        len(moved),
        rep["plain"]["macro_f1"],
        out,
    )
    return rep


def mix_stress_report(
    npz: Path, person: str, *, reference_source: str, min_faces: int, draws: int, out: Path
) -> dict[str, Any]:
    """Diagnostic S3 of the twenty-ninth session, from ``psn_report``'s saved scores: the
    PSN offset of ``person`` recomputed on ``draws`` mix-matched subsamples (the class mix of
    the reference persons' faces pooled; seeds 0..draws-1) and applied to all their faces."""
    with np.load(npz) as z:
        scores, persons, labels = z["scores"], z["persons"], z["labels"]
        ref_scores, ref_persons, ref_sources = z["ref_scores"], z["ref_persons"], z["ref_sources"]
        ref_labels = z["ref_labels"]
    mask = ref_sources == reference_source
    reference = reference_vector(
        person_medians(ref_scores, ref_persons, min_faces, mask), f"{npz} {reference_source}"
    )
    counts = np.bincount(ref_labels[mask], minlength=len(LABELS))
    proportions = {k: float(c / counts.sum()) for k, c in enumerate(counts) if c > 0}
    rows = persons == person
    if not rows.any():
        raise DataError(f"person {person!r} has no row in {npz}")
    y, s = labels[rows], scores[rows]
    results = []
    for seed in range(draws):
        offset = mix_matched_offset(s, y, proportions, reference, np.random.default_rng(seed))
        pred = (s + offset).argmax(1)
        cm = confusion(y, pred)
        results.append(
            {"seed": seed, "macro_f1": macro_f1(y, pred), "recall": cm.diagonal().tolist()}
        )
    f1 = np.array([r["macro_f1"] for r in results])
    rep = {
        "person": person,
        "proportions": {LABELS[k]: round(v, 4) for k, v in proportions.items()},
        "plain_macro_f1": macro_f1(y, s.argmax(1)),
        "psn_macro_f1": macro_f1(y, (s + reference - np.median(s, axis=0)).argmax(1)),
        "mix_matched_macro_f1_mean": float(f1.mean()),
        "mix_matched_macro_f1_std": float(f1.std(ddof=1)) if draws > 1 else 0.0,
        "draws": results,
    }
    write_text_atomic(out, json.dumps(rep, indent=2) + "\n")
    return rep


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point; bad input -> one clear line on stderr and exit code 2."""
    p = argparse.ArgumentParser(prog="python -m models.personnorm", description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=None, help="a run's best.pt")
    p.add_argument("--onnx", type=Path, default=None, help="or an exported model (sidecar beside)")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--split", default=None, help="the rows scored (default: every row)")
    p.add_argument("--reference-split", required=True, help="rows whose persons set the reference")
    p.add_argument("--reference-source", default=None, help="only this source's reference persons")
    p.add_argument("--only-source", default=None, help="normalise only this source's persons")
    p.add_argument("--min-faces", type=int, default=20, help="faces a person needs (default 20)")
    p.add_argument("--out", type=Path, required=True, help="report JSON")
    p.add_argument("--save-scores", type=Path, default=None, help="also keep log p as .npz")
    args = p.parse_args(argv)
    psn_report(
        args.data,
        args.split,
        args.reference_split,
        checkpoint=args.checkpoint,
        onnx=args.onnx,
        reference_source=args.reference_source,
        only_source=args.only_source,
        min_faces=args.min_faces,
        out=args.out,
        save_scores=args.save_scores,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Results job: export + evaluate finished runs, then summarise them (mean ± std over seeds).

``python -m models.results [--runs runs] [--data DIR] [--split test] [--out models/results]``

For every ``RUN/best.pt`` under ``--runs``: export ``RUN/model.onnx`` (fp32 weights, parity
checked) unless present, evaluate it on ``--split`` of the shared data into
``OUT/RUN.<split>.json`` (+ PNG), then group runs by configuration (everything but the seed)
and write ``OUT/summary.<split>.json`` and a markdown table on stdout.

``OUT/runs.json`` records each evaluated run (arch, train config, phases, validation
history); runs recorded there whose folders are gone (e.g. trained on another machine or
session) keep their reports in the summary, so old rows are not lost when new runs are added.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from contract.labels import LABELS
from models.checkpoint import load_checkpoint
from models.cli import entry_point
from models.evaluate import evaluate
from models.export import export
from models.files import write_text_atomic
from models.settings import REPO_ROOT, ModelsSettings

logger = logging.getLogger(__name__)

SEED_RE = re.compile(r"-s(\d+)$")
WEBCAM = "webcam-class"


def evaluate_runs(runs: Path, data: Path, split: str, out: Path) -> list[Path]:
    """Export and evaluate every finished run; returns the report paths."""
    reports = []
    for best in sorted(runs.glob("*/best.pt")):
        run = best.parent
        if not _finished(run):
            logger.info("skipping %s: training has not finished", run)
            continue
        report = out / f"{run.name}.{split}.json"
        if report.is_file() and report.stat().st_mtime > best.stat().st_mtime:
            reports.append(report)
            continue
        onnx_path = run / "model.onnx"
        if not onnx_path.is_file() or onnx_path.stat().st_mtime < best.stat().st_mtime:
            export(best, onnx_path, n_parity=16)
        evaluate(onnx_path, data, split, report)
        reports.append(report)
    return reports


def record_runs(run_dirs: list[Path], record: Path) -> list[str]:
    """Add/refresh each run's config and history in ``record`` (JSON); returns all run names."""
    runs: dict[str, Any] = json.loads(record.read_text()) if record.is_file() else {}
    for run in run_dirs:
        ckpt_path = run / "last.pt" if (run / "last.pt").is_file() else run / "best.pt"
        ckpt = load_checkpoint(ckpt_path)
        keys = ("arch", "train_config", "phases", "history")
        runs[run.name] = {k: ckpt[k] for k in keys if k in ckpt}
    write_text_atomic(record, json.dumps(dict(sorted(runs.items())), indent=1) + "\n")
    return sorted(runs)


def _finished(run: Path) -> bool:
    """Whether the run's last checkpoint marks fine-tuning done."""
    last = run / "last.pt"
    if not last.is_file():
        return True  # a bare best.pt (e.g. copied in) counts as final
    phases = load_checkpoint(last).get("phases", {})
    return bool(phases.get("finetune", {}).get("done", False))


def _mean_std(values: list[float]) -> dict[str, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarise(reports: list[Path]) -> dict[str, Any]:
    """Group reports by configuration (run name without ``-s<seed>``): mean ± std."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in reports:
        run = path.name.split(".")[0]
        groups.setdefault(SEED_RE.sub("", run), []).append(json.loads(path.read_text()))
    summary: dict[str, Any] = {}
    for name, reps in sorted(groups.items()):
        summary[name] = {
            "macro_f1": _mean_std([r["macro_f1"] for r in reps]),
            "accuracy": _mean_std([r["accuracy"] for r in reps]),
            "mean_class_accuracy": _mean_std([r["mean_class_accuracy"] for r in reps]),
            "webcam_macro_f1": _mean_std(
                [r["per_source"].get(WEBCAM, {}).get("macro_f1", float("nan")) for r in reps]
            ),
            "per_class_f1": {
                label: _mean_std([r["per_class"][label]["f1"] for r in reps]) for label in LABELS
            },
            "per_source_macro_f1": {
                src: _mean_std([r["per_source"][src]["macro_f1"] for r in reps])
                for src in sorted(reps[0]["per_source"])
            },
        }
    return summary


def markdown(summary: dict[str, Any]) -> str:
    """Results table: one row per configuration."""
    head = "| model | seeds | macro-F1 | webcam-class macro-F1 | accuracy | " + " | ".join(LABELS)
    lines = [head + " |", "|" + "---|" * (5 + len(LABELS))]
    for name, s in summary.items():

        def ms(d: dict[str, float]) -> str:
            return f"{d['mean']:.3f} ± {d['std']:.3f}" if d["n"] > 1 else f"{d['mean']:.3f}"

        cells = [name, str(s["macro_f1"]["n"]), ms(s["macro_f1"]), ms(s["webcam_macro_f1"])]
        cells += [ms(s["accuracy"])] + [f"{s['per_class_f1'][k]['mean']:.2f}" for k in LABELS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m models.results", description=__doc__)
    p.add_argument("--runs", type=Path, default=ModelsSettings().runs_dir)
    p.add_argument("--data", type=Path, default=ModelsSettings().learning_emotions_dir)
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "results")
    args = p.parse_args(argv)
    reports = evaluate_runs(args.runs, args.data, args.split, args.out)
    names = record_runs([args.runs / r.name.split(".")[0] for r in reports], args.out / "runs.json")
    recorded = [args.out / f"{n}.{args.split}.json" for n in names]
    reports = sorted(set(reports) | {r for r in recorded if r.is_file()})
    summary = summarise(reports)
    (args.out / f"summary.{args.split}.json").write_text(json.dumps(summary, indent=2) + "\n")
    sys.stdout.write(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

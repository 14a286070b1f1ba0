"""Sweep job: many training runs side by side on one machine, then export, test and summary.

``python -m models.sweep --plan PLAN.json [--runs runs] [--out models/results] [--deadline-min M]``

PLAN.json: ``{"common": [train args...], "runs": {"NAME": [train args...], ...}}``. Every run
is a ``python -m models.train COMMON ARGS --out RUNS/NAME`` process, all started at once (one
GPU serves them all; give each run wall-clock budgets with ``--pretrain-minutes`` and
``--finetune-minutes`` so they finish on their own). A run still going at ``--deadline-min``
is stopped; its last ``best.pt`` (written at every validation improvement) is still tested.
Then every run's ``best.pt`` is exported (fp32 weights) and evaluated on ``--split`` in
parallel, ``OUT/sweep.json`` records each run's exit status, steps and wall time, and the
results summary (``models.results``) is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from models.checkpoint import load_checkpoint
from models.cli import entry_point
from models.data import load_images, load_manifest
from models.errors import ConfigError
from models.files import write_text_atomic
from models.results import markdown, record_runs, summarise
from models.settings import REPO_ROOT, ModelsSettings

logger = logging.getLogger(__name__)


def read_plan(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """(common args, {run name: args}) from a plan file, validated."""
    try:
        plan = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"plan {path} cannot be read as JSON: {exc}") from exc
    runs = plan.get("runs") if isinstance(plan, dict) else None
    common = plan.get("common", []) if isinstance(plan, dict) else None
    if not isinstance(runs, dict) or not runs or not isinstance(common, list):
        raise ConfigError(f"plan {path}: expected {{'common': [...], 'runs': {{name: [...]}}}}")
    for name, args in runs.items():
        if not name.replace("-", "").replace("_", "").isalnum() or not isinstance(args, list):
            raise ConfigError(f"plan {path}: run {name!r} needs a plain name and a list of args")
    return [str(a) for a in common], {n: [str(a) for a in a_] for n, a_ in runs.items()}


def warm_cache(img_size: int) -> None:
    """Decode the train/val crops once, so the runs load the cache instead of racing to it."""
    settings = ModelsSettings()
    for split in ("train", "val"):
        load_images(
            load_manifest(settings.learning_emotions_dir, split), img_size, settings.cache_dir
        )


def _arg(args: list[str], flag: str, default: str) -> str:
    return args[args.index(flag) + 1] if flag in args else default


def train_all(
    common: list[str], runs: dict[str, list[str]], root: Path, deadline_s: float
) -> dict[str, dict[str, Any]]:
    """Start every run, wait until all end or the deadline passes; exit status per run."""
    env = os.environ | {"EMO_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    for name, args in runs.items():
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        with (out / "train.log").open("wb") as log:
            cmd = [sys.executable, "-m", "models.train", *common, *args, "--out", str(out)]
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    while any(p.poll() is None for p in procs.values()):
        if time.monotonic() - started > deadline_s:
            for name, p in procs.items():
                if p.poll() is None:
                    logger.warning("run %s still going at the deadline: stopping it", name)
                    p.send_signal(signal.SIGTERM)
            time.sleep(15)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(2)
    wall = time.monotonic() - started
    status = {}
    for name, p in procs.items():
        status[name] = {"returncode": p.wait(), "wall_s": round(wall, 1)}
        last = root / name / "last.pt"
        if last.is_file():
            ckpt = load_checkpoint(last)
            status[name]["phases"] = ckpt.get("phases", {})
    return status


def test_run(run: Path, data: Path, split: str, report: Path) -> dict[str, Any]:
    """Export ``run/best.pt`` (fp32) and evaluate it, each in its own process."""
    best = run / "best.pt"
    if not best.is_file():
        return {"tested": False, "why": "no best.pt"}
    onnx = run / "model.onnx"
    export = ["--checkpoint", str(best), "--out", str(onnx), "--weights", "fp32", "--tol", "1e-3"]
    evaluate = ["--onnx", str(onnx), "--data", str(data), "--split", split, "--out", str(report)]
    steps = [["models.export", *export], ["models.evaluate", *evaluate]]
    with (run / "test.log").open("wb") as log:
        for step in steps:
            rc = subprocess.call(
                [sys.executable, "-m", *step], stdout=log, stderr=subprocess.STDOUT
            )
            if rc != 0:
                return {"tested": False, "why": f"{step[0]} exited {rc} (see {run / 'test.log'})"}
    return {"tested": True}


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    settings = ModelsSettings()
    p = argparse.ArgumentParser(prog="python -m models.sweep", description=__doc__)
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=settings.runs_dir)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "results")
    p.add_argument("--split", default="test")
    p.add_argument("--deadline-min", type=float, default=60.0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel tests")
    p.add_argument(
        "--no-export",
        action="store_true",
        help="skip the ONNX export + evaluation; use the runs' --report-split reports",
    )
    args = p.parse_args(argv)
    common, runs = read_plan(args.plan)
    warm_cache(int(_arg(common, "--img-size", "96")))
    status = train_all(common, runs, args.runs, args.deadline_min * 60.0)
    args.out.mkdir(parents=True, exist_ok=True)
    data = settings.learning_emotions_dir
    for name in runs:  # PyTorch reports (--report-split) stand in until the ONNX ones exist
        torch_report = args.runs / name / f"best.{args.split}.json"
        if torch_report.is_file():
            shutil.copy2(torch_report, args.out / f"{name}.{args.split}.json")
            status[name]["torch_report"] = True
    if args.no_export:
        for name in runs:
            has = bool(status[name].get("torch_report"))
            status[name] |= {"tested": has, "report_from": "pytorch" if has else None}
        return _summarise(args, runs, status)

    def one(name: str) -> tuple[str, dict[str, Any]]:
        report = args.out / f"{name}.{args.split}.json"
        return name, test_run(args.runs / name, data, args.split, report)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for name, tested in pool.map(one, runs):
            status[name] |= tested
            status[name]["report_from"] = "onnx" if tested["tested"] else None
            if not tested["tested"] and status[name].get("torch_report"):
                status[name] |= {"tested": True, "report_from": "pytorch"}
    return _summarise(args, runs, status)


def _summarise(
    args: argparse.Namespace, runs: dict[str, list[str]], status: dict[str, dict[str, Any]]
) -> int:
    write_text_atomic(args.out / "sweep.json", json.dumps(status, indent=1) + "\n")
    done = [n for n in runs if status[n].get("tested")]
    names = record_runs([args.runs / n for n in done], args.out / "runs.json")
    reports = [args.out / f"{n}.{args.split}.json" for n in names]
    summary = summarise([r for r in reports if r.is_file()])
    write_text_atomic(args.out / f"summary.{args.split}.json", json.dumps(summary, indent=2) + "\n")
    sys.stdout.write(markdown(summary))
    failed = sorted(set(runs) - set(done))
    if failed:
        logger.error("runs without a test report: %s", failed)
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())

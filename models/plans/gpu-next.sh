#!/bin/bash
# Prepared, not yet run: the next lent GPU's one call (see README.md here, "gpu-next.json").
# `run` with carry ["var/gpu"], where var/gpu holds data/ (python -m models.pack --img-size 64),
# whl/ (cp312 wheels: pydantic, pydantic-core, pydantic-settings, python-dotenv,
# typing-inspection, annotated-types, timm) and nothing else; timeout_s 590.
# 8 runs side by side (twice the GPU share each of the first sweep's 16), each scoring its own
# best.pt on the test split when it ends (--report-split test; no export on the device), then
# every fusion run's best.pt comes back slimmed to fp16 weights (~13 MB each) for
# calibrate/export here.
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site var/gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 EMO_DATA_DIR=/tmp/data EMO_CACHE_DIR=/tmp/cache
cp -r var/gpu/data /tmp/data && python3 -m models.pack --unpack /tmp/data || exit 1
el "data ready"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 15 > "$OUT/smi.log" 2>&1 &
timeout ${SWEEP_TIMEOUT:-500} python3 -m models.sweep --plan ${PLAN:-models/plans/gpu-next.json} \
    --runs /tmp/runs --out "$OUT/results" --deadline-min ${DEADLINE_MIN:-8.0} --no-export
el "sweep exit $?"
kill %1 2>/dev/null
python3 - "$OUT" <<'PY'
import glob, os, sys, torch
for p in sorted(glob.glob("/tmp/runs/*-gate-s*/best.pt")):
    c = torch.load(p, map_location="cpu", weights_only=False)
    c.pop("optimizer", None); c.pop("rng", None)
    c["model"] = {k: v.half() if v.is_floating_point() else v for k, v in c["model"].items()}
    name = p.split("/")[-2]
    torch.save(c, os.path.join(sys.argv[1], f"{name}.best-fp16.pt"))
    print(name, "best val", c["phases"]["finetune"]["best"], "step", c["phases"]["finetune"]["step"])
PY
ls -la "$OUT" "$OUT/results"; el "done"

#!/bin/bash
# The device script exactly as run on 2026-11-28 (see README.md here): `run` with carry ["var/gpu"],
# where var/gpu holds data/ (python -m models.pack), whl/ (cp312 wheels of pydantic, pydantic-core,
# pydantic-settings, python-dotenv, typing-inspection, annotated-types, timm) and plan.json.
# One device call: install carried wheels, unpack data, run the sweep, return results.
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site var/gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 EMO_DATA_DIR=/tmp/data EMO_CACHE_DIR=/tmp/cache
python3 -c "import torch,timm,pydantic,onnxruntime,cv2;print('torch',torch.__version__,'cuda',torch.cuda.is_available(),'timm',timm.__version__,'ort',onnxruntime.__version__,onnxruntime.get_available_providers(),'cv2',cv2.__version__)"
cp -r var/gpu/data /tmp/data && python3 -m models.pack --unpack /tmp/data || exit 1
el "data ready"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 10 > "$OUT/smi.log" 2>&1 &
timeout ${SWEEP_TIMEOUT:-520} python3 -m models.sweep --plan ${PLAN:-var/gpu/plan.json} --runs /tmp/runs --out /tmp/results --deadline-min ${DEADLINE_MIN:-7.0} --jobs 16
el "sweep exit $?"
kill %1 2>/dev/null
python3 - <<'PY'
import torch, glob, os, json
best = None
for run in sorted(glob.glob("/tmp/runs/gpu-small-gate-s*")):
    p = os.path.join(run, "best.pt")
    if not os.path.isfile(p):
        continue
    c = torch.load(p, map_location="cpu", weights_only=False)
    score = c["phases"]["finetune"]["best"]
    print(run, "best val macro-F1", score, "finetune step", c["phases"]["finetune"]["step"])
    if best is None or score > best[0]:
        best = (score, run, c)
if best:
    c = best[2]; c.pop("optimizer", None); c.pop("rng", None)
    c["sweep_run"] = os.path.basename(best[1])
    torch.save(c, "/tmp/shipped.pt")
    print("shipping", best[1])
PY
tar czf "$OUT/results.tgz" -C /tmp results $(cd /tmp && ls runs/*/*.log 2>/dev/null) 2>/dev/null
[ -f /tmp/shipped.pt ] && split -b 15M /tmp/shipped.pt "$OUT/shipped.pt.part-"
ls -la "$OUT"; el "done"

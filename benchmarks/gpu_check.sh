#!/usr/bin/env bash
# The prepared GPU check (issue 20 item 3): <= 8 minutes on one GPU, one table. Never run in CI.
#
#   benchmarks/gpu_check.sh [extra gpu_check.py options]     (from the repository root, after `make setup`)
#
# Prints the table of benchmarks/gpu_check.py (MFU of iap-5b blocks, CPU/CUDA training parity,
# release-size generation with and without offload) and writes runs/gpu_check/gpu_check.json; then,
# if another helper has left benchmarks/dreamid_gpu_request.py, runs it in the time that is left.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
BUDGET=${GPU_CHECK_SECONDS:-480}   # the whole script, DreamID request included
OUT=${GPU_CHECK_OUT:-runs/gpu_check}
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to $PY (run it on a GPU machine; CPU: gpu_check.py --device cpu --reduced)" >&2
    exit 2
fi
start=$SECONDS
"$PY" -m facevox.release.memory | tee "$OUT/memory_plan.txt"   # the computed plan, to compare with the peaks below
timeout "$((BUDGET - (SECONDS - start)))" "$PY" benchmarks/gpu_check.py --device cuda --json "$OUT/gpu_check.json" "$@"
rc=$?
left=$((BUDGET - (SECONDS - start)))
# ---- hook: DreamID-Omni's GPU request (issue 21), when its script exists
if [[ -f benchmarks/dreamid_gpu_request.py ]]; then
    if ((left > 30)); then
        # a few steps: seconds per step and peak memory do not need the engine's 50
        timeout "$left" "$PY" benchmarks/dreamid_gpu_request.py --device cuda --steps "${DREAMID_STEPS:-5}" \
            --out "$OUT/dreamid_gpu_request.json" || rc=$((rc ? rc : $?))
    else
        echo "gpu_check: ${left}s left, DreamID-Omni request skipped" >&2
    fi
fi
exit $rc

#!/usr/bin/env bash
# One-call GPU check of the exact engine (see benchmarks/gpu_check.py). Budget: 8 minutes on one GPU.
#   bash benchmarks/gpu_check.sh [OUT_DIR]                      # JSON to OUT_DIR, else $OUT, else benchmarks/results
#   HF_UNIFORM_GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh DIR # tiny sizes on the CPU (CI smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 470 "$PY" benchmarks/gpu_check.py "$@"

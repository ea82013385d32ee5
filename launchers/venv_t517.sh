#!/usr/bin/env bash
# A venv with the GPU image's library versions (transformers 5.17.0, tokenizers 0.23.2, huggingface_hub 1.33.0,
# accelerate 1.15.0, lightning 2.6.6, torchmetrics 1.9.0) and only the packages that image has, plus the .whl/
# wheels installed offline as gpu_check.sh does: the gpu_check path's imports and tests are checked against
# that set. torch stays the local CPU 2.13.0 wheel: PyPI's Linux torch 2.11.0 is the CUDA build (2.6 GB of
# wheels with its nvidia-* dependencies) and the CPU build is not on PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q "torch==2.13.0" "transformers==5.17.0" "tokenizers==0.23.2" \
  "huggingface_hub==1.33.0" "accelerate==1.15.0" "safetensors==0.8.0" "lightning==2.6.6" "pytorch-lightning==2.6.6" \
  "torchmetrics==1.9.0" "tiktoken==0.14.0" peft sacrebleu scipy matplotlib rich networkx httpx filelock pyyaml \
  jinja2 absl-py six joblib pytest pytest-timeout hypothesis
[ -d .whl ] || bash launchers/gpu_wheels.sh
.venv/bin/python -m pip install -q --no-index --no-deps .whl/*.whl
OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/decoding tests/strategies tests/benchmarks "$@"
OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -m slow tests/benchmarks "$@"   # the gpu_check dry run

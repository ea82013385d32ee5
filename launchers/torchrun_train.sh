#!/usr/bin/env bash
# Multi-GPU training with torchrun instead of Lightning's own launcher (same code path as under SLURM: the
# processes exist before Lightning starts, so it spawns none; every rank reads the same run dir).
#   NPROC=4 bash launchers/torchrun_train.sh +experiment=squad_sft hardware=ddp
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 NPROC=8 bash launchers/torchrun_train.sh ...   # on each node
# Extra arguments are Hydra overrides. hardware.devices and hardware.num_nodes are set from NPROC / NNODES.
set -euo pipefail
cd "$(dirname "$0")/.."
NPROC=${NPROC:-2}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
# One output dir for all ranks: fixed here, so that ranks started at different seconds agree on it.
RUN_DIR=${RUN_DIR:-outputs/train/torchrun_$(date +%Y-%m-%d_%H-%M-%S)}

exec torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  -m parallel_decoding.train hardware.devices="$NPROC" hardware.num_nodes="$NNODES" \
  hydra.run.dir="$RUN_DIR" "$@"

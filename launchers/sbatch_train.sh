#!/usr/bin/env bash
# Plain sbatch (no submitit): one node, 4 GPUs, Lightning DDP with one SLURM task per GPU.
#   sbatch launchers/sbatch_train.sh +experiment=squad_sft
#   sbatch --nodes=2 launchers/sbatch_train.sh +experiment=squad_sft hardware.num_nodes=2
# Requeued or resubmitted with the same RUN_DIR, the job resumes from its last.ckpt (ckpt_path=last).
#SBATCH --job-name=parallel_decoding
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --output=logs/slurm-%j.out
#SBATCH --signal=SIGUSR1@120
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
mkdir -p logs
TASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-4}
RUN_DIR=${RUN_DIR:-outputs/train/slurm_${SLURM_JOB_ID:-local}}
# srun starts the ranks; Lightning's SLURM environment reads SLURM_PROCID/SLURM_LOCALID and spawns nothing.
# hardware.devices must equal the tasks per node, or Lightning refuses to start.
srun python -m parallel_decoding.train hardware=ddp hardware.devices="$TASKS_PER_NODE" \
  hardware.num_nodes="${SLURM_NNODES:-1}" hydra.run.dir="$RUN_DIR" ckpt_path=last "$@"

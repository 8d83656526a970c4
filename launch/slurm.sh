#!/usr/bin/env bash
# SLURM GPU job: one `vljax train` process per node, each driving all of its node's GPUs.
#
#   sbatch --nodes=4 launch/slurm_gpu.sh --config configs/clip_vit_b16.py --workdir /shared/runs/b16
#   launch/slurm_gpu.sh --dry-run --config configs/demo.py --workdir runs/x   # prints the srun line
#
# The workdir must be on a filesystem every node sees. Edit the #SBATCH lines for your cluster.
#SBATCH --job-name=vljax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; shift; fi
PORT=${VLJAX_PORT:-8476}
VLJAX=${VLJAX:-.venv/bin/vljax}

if [[ -n "${SLURM_JOB_NODELIST:-}" ]]; then
  HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
elif (( DRY_RUN )); then
  HEAD="<first node of the job>"
else
  echo "slurm_gpu.sh: not inside a SLURM job; submit it with sbatch (or use --dry-run)" >&2
  exit 2
fi

# SLURM_NTASKS / SLURM_PROCID are expanded by each task, not here.
TASK="VLJAX_COORDINATOR=$HEAD:$PORT VLJAX_NUM_PROCESSES=\$SLURM_NTASKS"
TASK+=" VLJAX_PROCESS_ID=\$SLURM_PROCID exec $VLJAX train $(printf '%q ' "$@")"
CMD=(srun --kill-on-bad-exit=1 bash -c "$TASK")

if (( DRY_RUN )); then
  echo "srun --kill-on-bad-exit=1 bash -c '$TASK'"
else
  exec "${CMD[@]}"
fi

#!/usr/bin/env bash
# One `vljax train` run on every node of a SLURM allocation: one process per node (srun),
# each driving all of its node's GPUs; the allocation's first node is the coordinator.
#
#   launch/slurm.sh --config configs/clip_vit_b16.py --workdir /shared/runs/b16   # in a job
#   launch/slurm.sh --dry-run --config configs/demo.py --workdir runs/x   # prints the srun line
#
# Submit it with launch/slurm.sbatch (one run, or a sweep's job array), or run it in an
# salloc. The workdir must be on a filesystem every node sees. VLJAX: the vljax executable
# (default .venv/bin/vljax of the job's working directory); VLJAX_PORT: the coordinator port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/quote.sh"

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; shift; fi
PORT=${VLJAX_PORT:-8476}
VLJAX=${VLJAX:-.venv/bin/vljax}

if [[ -n "${SLURM_JOB_NODELIST:-}" ]]; then
  HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
elif (( DRY_RUN )); then
  HEAD="FIRST_NODE"  # scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1, in the job
else
  echo "slurm.sh: not inside a SLURM job; submit launch/slurm.sbatch with sbatch, run it in" \
    "an salloc, or use --dry-run" >&2
  exit 2
fi

# SLURM_NTASKS / SLURM_PROCID are expanded by each task, not here.
TASK="VLJAX_COORDINATOR=$(quote "$HEAD:$PORT") VLJAX_NUM_PROCESSES=\$SLURM_NTASKS"
TASK+=" VLJAX_PROCESS_ID=\$SLURM_PROCID exec $(join_quoted "$VLJAX" train "$@")"
CMD=(srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$TASK")

if (( DRY_RUN )); then
  join_quoted "${CMD[@]}"
else
  exec "${CMD[@]}"
fi

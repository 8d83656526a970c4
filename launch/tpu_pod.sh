#!/usr/bin/env bash
# Cloud TPU VM pod slice: one `vljax train` process per TPU VM worker.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config configs/siglip_vit_b16.py --workdir /mnt/shared/runs/s16
#   launch/tpu_pod.sh --dry-run TPU_NAME ZONE --config configs/demo.py --workdir runs/x
#
# Every worker needs the repo at $REPO_DIR with its .venv (e.g. run `git clone ... && make venv`
# through `gcloud compute tpus tpu-vm ssh TPU --worker=all --command ...` once), and the
# workdir on a filesystem all workers share (NFS, Filestore, a gcsfuse mount).
set -euo pipefail

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; shift; fi
if (( $# < 2 )); then
  echo "usage: $0 [--dry-run] TPU_NAME ZONE [vljax train args...]" >&2
  exit 2
fi
TPU=$1 ZONE=$2
shift 2
PORT=${VLJAX_PORT:-8476}
REPO_DIR=${REPO_DIR:-'~/vljax'}

if (( DRY_RUN )); then
  HEAD="<worker-0 internal IP>" NUM="<number of workers>"
else
  describe() { gcloud compute tpus tpu-vm describe "$TPU" --zone "$ZONE" --format "$1"; }
  HEAD=$(describe 'value(networkEndpoints[0].ipAddress)')
  NUM=$(describe 'value(networkEndpoints[].ipAddress)' | tr ';' '\n' | grep -c .)
fi

# The worker id comes from each VM's metadata server, read on the worker itself.
WORKER_ID='$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)'
REMOTE="cd $REPO_DIR && VLJAX_COORDINATOR=$HEAD:$PORT VLJAX_NUM_PROCESSES=$NUM"
REMOTE+=" VLJAX_PROCESS_ID=$WORKER_ID .venv/bin/vljax train $(printf '%q ' "$@")"
CMD=(gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "$REMOTE")

if (( DRY_RUN )); then
  echo "gcloud compute tpus tpu-vm ssh $TPU --zone $ZONE --worker=all --command \"$REMOTE\""
else
  exec "${CMD[@]}"
fi

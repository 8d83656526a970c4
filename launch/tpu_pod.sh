#!/usr/bin/env bash
# Cloud TPU VM pod slice: create or reuse it, put this checkout on every worker, install,
# run `vljax train` on --worker=all (one process per worker, output streamed back), delete.
#
#   launch/tpu_pod.sh [--dry-run] [--create TYPE] [--version RUNTIME] [--copy | --pull GIT_URL]
#                     [--install] [--delete] TPU_NAME ZONE [[--] vljax train args...]
#
#   launch/tpu_pod.sh --create v4-32 --copy --install my-pod us-central2-b   # set up only
#   launch/tpu_pod.sh my-pod us-central2-b -- --config configs/siglip_vit_b16.py --workdir /mnt/shared/s16
#   launch/tpu_pod.sh --delete my-pod us-central2-b
#   launch/tpu_pod.sh --dry-run my-pod us-central2-b --config configs/demo.py --workdir /mnt/runs/x
#
# Steps run in this order, each only when asked: --create (an existing TPU VM of that name
# is reused), --copy (the tracked files of this checkout, uncommitted edits included) or
# --pull (git clone, or pull in an existing clone), --install (a venv with vljax and
# jax[tpu]), the run (when train args are given), --delete. --dry-run prints every command
# and runs none. The workdir must be on a filesystem every worker shares (NFS, Filestore, a
# gcsfuse mount). REPO_DIR: the checkout on the workers (default vljax, in the home folder);
# VLJAX_PORT: the coordinator port.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/quote.sh"

DRY_RUN=0 CREATE="" VERSION=tpu-ubuntu2204-base COPY=0 PULL="" INSTALL=0 DELETE=0
while (( $# )); do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --create) CREATE=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --copy) COPY=1; shift ;;
    --pull) PULL=$2; shift 2 ;;
    --install) INSTALL=1; shift ;;
    --delete) DELETE=1; shift ;;
    -*) echo "tpu_pod.sh: unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if (( $# < 2 )); then
  echo "usage: $0 [--dry-run] [--create TYPE] [--copy | --pull URL] [--install] [--delete]" \
    "TPU_NAME ZONE [[--] vljax train args...]" >&2
  exit 2
fi
TPU=$1 ZONE=$2
shift 2
if [[ "${1:-}" == "--" ]]; then shift; fi
if (( COPY )) && [[ -n "$PULL" ]]; then
  echo "tpu_pod.sh: --copy and --pull both put the code on the workers; give one" >&2
  exit 2
fi
PORT=${VLJAX_PORT:-8476}
REPO_DIR=${REPO_DIR:-vljax}
ARCHIVE=vljax-code.tgz
TPU_VM=(gcloud compute tpus tpu-vm)

# step LINE: prints the shell line under --dry-run, else runs it.
step() {
  if (( DRY_RUN )); then printf '%s\n' "$1"; else bash -c "$1"; fi
}
on_all() {  # on_all REMOTE_COMMAND: the ssh line that runs it on every worker
  join_quoted "${TPU_VM[@]}" ssh "$TPU" --zone "$ZONE" --worker=all --command "$1"
}

if [[ -n "$CREATE" ]]; then
  step "$(join_quoted "${TPU_VM[@]}" describe "$TPU" --zone "$ZONE") >/dev/null 2>&1 || \
$(join_quoted "${TPU_VM[@]}" create "$TPU" --zone "$ZONE" --accelerator-type "$CREATE" \
    --version "$VERSION")"
fi
if (( COPY )); then
  LOCAL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  step "cd $(quote "$LOCAL_REPO") && git ls-files -z | tar czf $(quote "/tmp/$ARCHIVE") --null -T -"
  step "$(join_quoted "${TPU_VM[@]}" scp "/tmp/$ARCHIVE" "$TPU:$ARCHIVE" --zone "$ZONE" \
    --worker=all)"
  step "$(on_all "mkdir -p $(quote "$REPO_DIR") && tar xzf $ARCHIVE -C $(quote "$REPO_DIR")")"
elif [[ -n "$PULL" ]]; then
  step "$(on_all "git clone $(quote "$PULL") $(quote "$REPO_DIR") 2>/dev/null || \
git -C $(quote "$REPO_DIR") pull --ff-only")"
fi
if (( INSTALL )); then
  step "$(on_all "cd $(quote "$REPO_DIR") && python3 -m venv .venv && \
.venv/bin/pip install -q -e . 'jax[tpu]'")"
fi
if (( $# )); then
  if (( DRY_RUN )); then
    HEAD=WORKER0_IP NUM=NUM_WORKERS
    printf '# WORKER0_IP=$(%s)\n' "$(join_quoted "${TPU_VM[@]}" describe "$TPU" --zone "$ZONE" \
      --format 'value(networkEndpoints[0].ipAddress)')"
    printf '# NUM_WORKERS: the count of networkEndpoints[].ipAddress\n'
  else
    describe() { "${TPU_VM[@]}" describe "$TPU" --zone "$ZONE" --format "$1"; }
    HEAD=$(describe 'value(networkEndpoints[0].ipAddress)')
    NUM=$(describe 'value(networkEndpoints[].ipAddress)' | tr ';' '\n' | grep -c .)
  fi
  # The worker id comes from each VM's metadata server, read on the worker itself.
  WORKER_ID='$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)'
  REMOTE="cd $(quote "$REPO_DIR") && VLJAX_COORDINATOR=$HEAD:$PORT VLJAX_NUM_PROCESSES=$NUM"
  REMOTE+=" VLJAX_PROCESS_ID=$WORKER_ID exec $(join_quoted .venv/bin/vljax train "$@")"
  step "$(on_all "$REMOTE")"
fi
if (( DELETE )); then
  step "$(join_quoted "${TPU_VM[@]}" delete "$TPU" --zone "$ZONE" --quiet)"
fi

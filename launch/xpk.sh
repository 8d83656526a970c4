#!/usr/bin/env bash
# TPU slices on GKE through XPK (github.com/AI-Hypercomputer/xpk): one `vljax train` run as an
# XPK workload (a JobSet: one pod per TPU VM host of every slice), listed, or deleted.
#
#   launch/xpk.sh [--dry-run] --cluster C [--project P] [--zone Z] ACTION
#     ACTION: create WORKLOAD --tpu-type T [--num-slices N] [--docker-image IMG |
#                 --base-docker-image IMG] [--max-restarts K] [--wait] [--] <vljax train args>
#             list | delete WORKLOAD
#
#   launch/xpk.sh --cluster my-gke create l14-run --tpu-type v5p-256 --num-slices 2 \
#       --docker-image gcr.io/my-project/vljax:latest -- --config configs/clip_vit_l14.py \
#       --workdir /mnt/shared/l14
#   launch/xpk.sh --cluster my-gke list
#   launch/xpk.sh --cluster my-gke delete l14-run
#
# The code in the pods: --docker-image IMG runs an image with vljax and jax[tpu] installed
# (VLJAX: its vljax executable, default `vljax`); without it XPK layers this checkout onto
# --base-docker-image (XPK's default image unless given) and the command installs it first.
# Every host runs `vljax train`, whose jax.distributed.initialize() finds its peers from the
# variables GKE and XPK set (TPU_WORKER_HOSTNAMES, MEGASCALE_*: vljax/distributed.py).
# --num-slices N > 1 adds --config.mesh.dcn_data=N (unless the train args set it): the data
# axis split over the slices, FSDP and tensor inside each (docs/scaling.md). --wait waits for
# the workload (`xpk workload list --wait-for-job-completion`: exit 0 when it succeeded). The
# workdir must be a path every pod shares (a Filestore or GCS bucket attached to the cluster
# with `xpk storage attach`). --dry-run prints the xpk commands and runs none.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/quote.sh"

usage() {
  echo "usage: $0 [--dry-run] --cluster C [--project P] [--zone Z] create WORKLOAD" \
    "--tpu-type T [--num-slices N] [--docker-image IMG | --base-docker-image IMG]" \
    "[--max-restarts K] [--wait] [--] <vljax train args> | list | delete WORKLOAD" >&2
  exit 2
}
fail() { echo "xpk.sh: $*" >&2; exit 2; }

DRY_RUN=0 CLUSTER="" PROJECT="" ZONE="" TPU_TYPE="" SLICES=1 IMAGE="" BASE_IMAGE=""
RESTARTS="" WAIT=0 ACTION="" WORKLOAD=""
while (( $# )); do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --cluster) CLUSTER=$2; shift 2 ;;
    --project) PROJECT=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --tpu-type) TPU_TYPE=$2; shift 2 ;;
    --num-slices) SLICES=$2; shift 2 ;;
    --docker-image) IMAGE=$2; shift 2 ;;
    --base-docker-image) BASE_IMAGE=$2; shift 2 ;;
    --max-restarts) RESTARTS=$2; shift 2 ;;
    --wait) WAIT=1; shift ;;
    --) shift; break ;;
    create | delete)
      [[ -z "$ACTION" && -n "${2:-}" ]] || usage
      ACTION=$1 WORKLOAD=$2; shift 2 ;;
    list) [[ -z "$ACTION" ]] || usage; ACTION=list; shift ;;
    -*)
      # The train args follow the action's options (a `--` before them is optional).
      [[ "$ACTION" == create ]] && break
      fail "unknown option $1 (see the usage at the top of $0)" ;;
    *) usage ;;
  esac
done
[[ -n "$ACTION" ]] || usage
[[ -n "$CLUSTER" ]] || fail "give --cluster NAME (the GKE cluster XPK created)"
if [[ -n "$WORKLOAD" && ! ( "$WORKLOAD" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ && ${#WORKLOAD} -le 40 ) ]]
then
  fail "workload name '$WORKLOAD': XPK takes at most 40 of a-z, 0-9 and '-', starting with a" \
    "letter and not ending with '-'"
fi
[[ "$SLICES" =~ ^[1-9][0-9]*$ ]] || fail "--num-slices $SLICES: give a positive integer"
WHERE=(--cluster "$CLUSTER")
[[ -n "$PROJECT" ]] && WHERE+=(--project "$PROJECT")
[[ -n "$ZONE" ]] && WHERE+=(--zone "$ZONE")

run() {  # run ARGV...: printed as one shell line under --dry-run, else run
  if (( DRY_RUN )); then join_quoted "$@"; else "$@"; fi
}

case "$ACTION" in
  list) run xpk workload list "${WHERE[@]}"; exit ;;
  delete) run xpk workload delete "${WHERE[@]}" --workload "$WORKLOAD" --force; exit ;;
esac

(( $# )) || fail "create: give the vljax train args after the workload's options"
[[ -n "$TPU_TYPE" ]] || fail "create: give --tpu-type (the slice type, e.g. v5p-256)"
[[ -n "$IMAGE" && -n "$BASE_IMAGE" ]] && fail "give --docker-image or --base-docker-image, not both"
TRAIN=("$@")
if (( SLICES > 1 )) && [[ ! " ${TRAIN[*]} " =~ " --config.mesh.dcn_data" ]]; then
  TRAIN+=("--config.mesh.dcn_data=$SLICES")
fi
CREATE=(xpk workload create "${WHERE[@]}" --workload "$WORKLOAD" --tpu-type "$TPU_TYPE"
  --num-slices "$SLICES")
if [[ -n "$IMAGE" ]]; then
  CREATE+=(--docker-image "$IMAGE")
  COMMAND="exec $(join_quoted "${VLJAX:-vljax}" train "${TRAIN[@]}")"
else
  # XPK copies --script-dir into the image and runs the command there.
  [[ -n "$BASE_IMAGE" ]] && CREATE+=(--base-docker-image "$BASE_IMAGE")
  CREATE+=(--script-dir "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)")
  COMMAND="python3 -m pip install -q -e . 'jax[tpu]' && exec $(join_quoted python3 -m vljax.cli \
train "${TRAIN[@]}")"
fi
[[ -n "$RESTARTS" ]] && CREATE+=(--max-restarts "$RESTARTS")
CREATE+=(--command "$COMMAND")
run "${CREATE[@]}"
if (( WAIT )); then
  run xpk workload list "${WHERE[@]}" --wait-for-job-completion "$WORKLOAD"
fi

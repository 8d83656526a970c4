# Shell quoting for the launchers' --dry-run output and remote commands, sourced by
# slurm.sh and tpu_pod.sh: the same rule as Python's shlex.quote, so a printed line is what
# `vljax sweep --dry-run` prints and runs as shown (paths with spaces, JSON overrides).

# quote WORD: WORD as is when it needs no quoting, else in single quotes.
quote() {
  if [[ -n "$1" && "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\"\'\"\'}"
  fi
}

# join_quoted WORDS...: the words quoted and joined by spaces, one shell command line.
join_quoted() {
  local out=() word
  for word in "$@"; do out+=("$(quote "$word")"); done
  printf '%s\n' "${out[*]}"
}

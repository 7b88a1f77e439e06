#!/usr/bin/env bash
# Runs handoff's integration tests under valgrind (memcheck): leaks and
# memory errors fail the run.
#
#   scripts/valgrind.sh            # the default subset (a few minutes)
#   scripts/valgrind.sh --ci       # the small subset .ci/run uses
#   scripts/valgrind.sh --all      # every integration test binary of every crate
#   scripts/valgrind.sh TEST[:FILTER] ...   # chosen test binaries, e.g.
#        scripts/valgrind.sh fault_panics stress_tcp:churn reactor/tests/net.rs
#
# Each test binary is built by `cargo test --no-run` (its path read from
# cargo's JSON messages) and run with --test-threads=1 under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1
# HANDOFF_UNDER_VALGRIND=1 tells the stress/fault tests to run their
# scenario in-process (valgrind does not follow the child processes they use
# otherwise), to shrink their sizes, and to skip the few that change
# process-wide limits (setrlimit, setuid).
# valgrind warns "unhandled amd64-linux syscall: 441" (epoll_pwait2): it
# returns ENOSYS and the reactor falls back to epoll_pwait, as on old kernels.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
  echo "valgrind not found; installing it with apt-get" >&2
  (apt-get update && apt-get install -y valgrind) >/dev/null
}

ci_subset=(fault_panics fault_fd stress_runtime stress_tasks stress_tcp stress_blocking)
default_subset=(fault_panics fault_fd fault_threads stress_runtime stress_tasks stress_tcp
                stress_blocking blocking_bridge)

if [[ $# -eq 0 ]]; then
  set -- "${default_subset[@]}"
elif [[ $1 == --ci ]]; then
  set -- "${ci_subset[@]}"
elif [[ $1 == --all ]]; then
  set -- $(ls tests/*.rs | sed 's|tests/\(.*\)\.rs|\1|') $(ls ./*/tests/*.rs | sed 's|^\./||')
fi

# Build the workspace's test binaries in one cargo call (already built by
# `cargo test --workspace` in CI); a test is found by its source file:
# NAME means tests/NAME.rs of the root package, a path (reactor/tests/net.rs)
# any crate's test.
json=$(cargo test --workspace --tests --no-run --message-format=json 2>/dev/null)

status=0
for spec in "$@"; do
  name=${spec%%:*}
  filter=""
  [[ $spec == *:* ]] && filter=${spec#*:}
  case $name in
    */*) src="$PWD/$name" ;;
    *) src="$PWD/tests/$name.rs" ;;
  esac
  exe=$(printf '%s\n' "$json" | grep -F "\"src_path\":\"$src\"" | grep '"test":true' |
        grep -o '"executable":"[^"]*"' |
        sed 's/"executable":"\(.*\)"/\1/' | tail -1)
  if [[ -z $exe ]]; then
    echo "valgrind.sh: no test binary named $name" >&2
    status=1
    continue
  fi
  echo "=== valgrind: $name ${filter:+(filter: $filter)}"
  start=$SECONDS
  # shellcheck disable=SC2086
  if HANDOFF_UNDER_VALGRIND=1 valgrind --quiet --leak-check=full \
       --errors-for-leak-kinds=definite --show-leak-kinds=definite \
       --error-exitcode=1 "$exe" --test-threads=1 $filter; then
    echo "=== valgrind: $name clean ($((SECONDS - start))s)"
  else
    echo "=== valgrind: $name FAILED ($((SECONDS - start))s)"
    status=1
  fi
done
exit $status

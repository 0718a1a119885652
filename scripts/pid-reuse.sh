#!/usr/bin/env bash
# Runs the workspace's tests twice, each time in a fresh PID namespace, so that the second run's
# test processes get the process ids the first run's had and meet whatever those left under
# $TMPDIR. Tests name their scratch folders after their process id; a test that does not start
# from an empty folder fails here (as one did in CI, where `scripts/test.sh` runs the CLI tests
# twice on a fresh machine and the ids repeated: docs/RELIABILITY.md, bug 95).
#
#   scripts/pid-reuse.sh [CARGO TEST ARGS…]     (default: --workspace)
#
# Needs `unshare` (util-linux) and either root or unprivileged user namespaces (`unshare -r`).
# Exit status: 0 when both runs pass.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- --workspace
ns=(unshare -pf --mount-proc)
[ "$(id -u)" = 0 ] || ns=(unshare -rpf --mount-proc)
if ! "${ns[@]}" true 2> /dev/null; then
  echo "pid-reuse: cannot make a PID namespace here (${ns[*]}): run as root or allow user namespaces" >&2
  exit 2
fi
cargo test --no-run "$@"
for run in 1 2; do
  echo "pid-reuse: run $run" >&2
  "${ns[@]}" cargo test "$@"
done
echo "pid-reuse: both runs passed" >&2

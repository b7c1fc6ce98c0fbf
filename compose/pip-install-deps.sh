#!/bin/sh
# Install an image's Python dependencies into /opt/venv (bind-mounted into the serve and supervisor builds).
# Arguments: the requirements, e.g. "/src[serve,cpu]". The package itself is a stub here, so this layer
# changes only with pyproject.toml; the Dockerfile installs the real sources afterwards with --no-deps.
# Environment (build args): PIP_OFFLINE=1 installs only from /wheels (compose/wheels); PIP_EXTRA_INDEX_URL;
# SETUPTOOLS_VERSION and WHEEL_VERSION for the --no-build-isolation installs.
set -eu
mkdir -p /src/appliance && touch /src/appliance/__init__.py
opts="--find-links /wheels"
if [ "${PIP_OFFLINE:-0}" = 1 ]; then opts="--no-index $opts"; fi
if [ -n "${PIP_EXTRA_INDEX_URL:-}" ]; then opts="$opts --extra-index-url $PIP_EXTRA_INDEX_URL"; fi
# shellcheck disable=SC2086  # $opts is a list of options
pip install --quiet $opts "setuptools==${SETUPTOOLS_VERSION}" "wheel==${WHEEL_VERSION}"
# shellcheck disable=SC2086
pip install --quiet --no-build-isolation $opts "$@"
pip uninstall --quiet --yes appliance
rm -rf /src/appliance

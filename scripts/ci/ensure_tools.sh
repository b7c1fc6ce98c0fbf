#!/usr/bin/env bash
# Make sure the system tools the tests need are present.
# Usage: ensure_tools.sh COMMAND:DEBIAN_PACKAGE ...
# Missing tools are installed with apt-get when running as root or with CI=true; otherwise the script fails
# and names them, so nothing is skipped silently.
set -euo pipefail

missing_cmds=()
missing_pkgs=()
for pair in "$@"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if [ "${cmd:0:1}" = / ]; then  # an absolute path: a file the package installs (e.g. an nginx module)
    [ -e "$cmd" ] && continue
  elif command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ]; then
    continue
  fi
  missing_cmds+=("$cmd")
  missing_pkgs+=("$pkg")
done

[ ${#missing_cmds[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
  echo "ensure_tools: installing ${missing_pkgs[*]} (for ${missing_cmds[*]})" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
  for cmd in "${missing_cmds[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -e "$cmd" ] || { echo "ensure_tools: $cmd still missing" >&2; exit 1; }
  done
  exit 0
fi

echo "ensure_tools: missing tools the tests need: ${missing_cmds[*]}" >&2
echo "  install them with: sudo apt-get install ${missing_pkgs[*]}   (or run as root / with CI=true)" >&2
exit 1

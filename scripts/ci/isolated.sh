#!/usr/bin/env bash
# Run a command in a fresh network namespace that has only a loopback interface, so that nothing a test
# starts (Ray binds its gRPC servers on every interface) can be reached from, or send to, any other
# address. Root uses `unshare --net`; others get a user namespace as well (`--map-root-user`).
# Usage: isolated.sh COMMAND [ARGS...]
set -euo pipefail
command -v unshare >/dev/null || { echo "isolated.sh: 'unshare' (util-linux) is missing" >&2; exit 1; }
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || { echo "isolated.sh: 'ip' (iproute2) is missing" >&2; exit 1; }
flags=(--net)
[ "$(id -u)" = 0 ] || flags+=(--map-root-user)
export APPLIANCE_NETNS_ISOLATED=1
exec unshare "${flags[@]}" -- bash -c 'PATH="$PATH:/usr/sbin:/sbin"; ip link set lo up && exec "$@"' isolated "$@"

#!/usr/bin/env bash
# Make a local debian:bookworm-slim-like base image without a registry: debootstrap --variant=minbase from
# the machine's Debian mirror, then `docker import`. Every appliance Dockerfile takes BASE_IMAGE, so the whole
# stack can be built from it (the e2e-docker test tier does; so can an air-gapped site with a Debian mirror).
# Usage: debian_base.sh IMAGE_NAME [MIRROR]      (DOCKER_HOST picks the engine)
set -euo pipefail
image=${1:?usage: debian_base.sh IMAGE_NAME [MIRROR]}
mirror=${2:-}
if [ -z "$mirror" ]; then  # the first Debian URI of the machine's apt sources (deb822 or one-line format)
  mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//' || true)
  [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]*/debian/? ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || { echo "debian_base.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/appliance-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "debian_base.sh: debootstrap bookworm from $mirror" >&2
PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# Like the official slim image: no apt lists or caches, the same apt sources inside.
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*.bin
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$work/rootfs/etc/apt/sources.list"
tar -C "$work/rootfs" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "debian_base.sh: imported $image" >&2

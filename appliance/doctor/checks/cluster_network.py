"""With a cluster network set (RAY_CLUSTER_INTERFACE …), the interface exists on this host and is up: Docker's
macvlan network needs it as its parent, and ``make up`` / ``join`` would fail later with Docker's words."""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Callable

from appliance.cluster.network import cluster_network
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

SIOCGIFFLAGS = 0x8913  # <linux/sockios.h>
IFF_UP = 0x1


def link_up(interface: str) -> bool | None:
    """Whether ``interface`` is administratively up, None when this network namespace has no such interface.
    Asked of the kernel (SIOCGIFFLAGS), not of /sys/class/net, which shows the namespace sysfs was mounted in."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16s16x", interface.encode()[:15]))
        except OSError:
            return None
    (flags,) = struct.unpack_from("H", answer, 16)
    return bool(flags & IFF_UP)


class ClusterNetwork(Check):
    slug = "cluster-network"
    title = "Cluster interface present"
    probe: Callable[[str], bool | None] = staticmethod(link_up)

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and cluster_network(ctx.config.settings) is not None

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        network = cluster_network(ctx.config.settings)
        assert network is not None
        state = self.probe(network.interface)
        expected = f"interface {network.interface} up (RAY_CLUSTER_INTERFACE)"
        if state is None:
            return [
                self.problem(
                    Level.ERROR,
                    expected,
                    "no such interface on this host",
                    "set RAY_CLUSTER_INTERFACE to the interface on the private network (ip -brief link lists them)",
                )
            ]
        if not state:
            return [self.problem(Level.ERROR, expected, "down", f"bring it up: ip link set {network.interface} up")]
        return [self.ok(found=f"{network.interface} up; this node at {network.bind}", expected=expected)]

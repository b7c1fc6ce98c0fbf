"""The private network that joins the appliance's Ray nodes: which host interface, which subnet, which address.

On a single node (the default) Ray is reachable only inside the stack's ``serving`` network. With
``RAY_CLUSTER_INTERFACE``, ``RAY_CLUSTER_SUBNET`` and ``RAY_CLUSTER_BIND`` set, the serve container (on the head)
or the worker container (on a worker machine) gets a macvlan address of its own, ``RAY_CLUSTER_BIND``, on that
interface: Ray advertises it (``--node-ip-address``) and every other node reaches this one there. Nothing is
published on the host's own addresses, so nothing listens on 0.0.0.0 of the host; the container's ports are
reachable at that one address of the private network, and nowhere else outside the stack.

Pure: settings in, the network (or what is wrong with them) out.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from appliance.config.settings import Settings

KEYS = ("RAY_CLUSTER_INTERFACE", "RAY_CLUSTER_SUBNET", "RAY_CLUSTER_BIND")
# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no '/', whitespace or ':' (aliases are not links).
INTERFACE_RE = re.compile(r"[A-Za-z0-9_.@-]{1,15}")


@dataclass(frozen=True)
class ClusterNetwork:
    interface: str
    subnet: str  # canonical CIDR
    bind: str  # this node's address on it


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    hint: str = ""


def cluster_network(settings: Settings) -> ClusterNetwork | None:
    """The cluster network of valid settings, None on a single node (call ``problems`` first)."""
    if not settings.ray_cluster_interface:
        return None
    subnet = ipaddress.ip_network(settings.ray_cluster_subnet.strip(), strict=True)
    return ClusterNetwork(settings.ray_cluster_interface.strip(), str(subnet), settings.ray_cluster_bind.strip())


def problems(settings: Settings) -> list[Problem]:
    """What is wrong with the three settings: all or none, a real interface name, a subnet, a usable address."""
    values = dict(
        zip(
            KEYS,
            (
                settings.ray_cluster_interface.strip(),
                settings.ray_cluster_subnet.strip(),
                settings.ray_cluster_bind.strip(),
            ),
        )
    )
    if not any(values.values()):
        return []
    missing = [k for k, v in values.items() if not v]
    if missing:
        return [
            Problem(
                k,
                "expected a value when any of RAY_CLUSTER_INTERFACE, RAY_CLUSTER_SUBNET, RAY_CLUSTER_BIND is set, "
                "found an empty value",
                "a node joins others with all three (docs/guides/scale-out.md), or none for a single node",
            )
            for k in missing
        ]
    found: list[Problem] = []
    interface = values["RAY_CLUSTER_INTERFACE"]
    if not INTERFACE_RE.fullmatch(interface):
        found.append(
            Problem(
                "RAY_CLUSTER_INTERFACE",
                f"expected a network interface name (1-15 letters, digits, '_', '.', '@' or '-'), found {interface!r}",
                "ip -brief link lists them",
            )
        )
    try:
        subnet = ipaddress.ip_network(values["RAY_CLUSTER_SUBNET"], strict=True)
    except ValueError as err:
        return [
            *found,
            Problem(
                "RAY_CLUSTER_SUBNET",
                f"expected a subnet in CIDR form (e.g. 10.50.0.0/24), found {values['RAY_CLUSTER_SUBNET']!r}: {err}",
            ),
        ]
    try:
        bind = ipaddress.ip_address(values["RAY_CLUSTER_BIND"])
    except ValueError:
        return [
            *found,
            Problem("RAY_CLUSTER_BIND", f"expected an IP address, found {values['RAY_CLUSTER_BIND']!r}"),
        ]
    if not isinstance(subnet, ipaddress.IPv4Network) or bind.version != 4:
        found.append(
            Problem(
                "RAY_CLUSTER_SUBNET" if not isinstance(subnet, ipaddress.IPv4Network) else "RAY_CLUSTER_BIND",
                "expected IPv4 (the cluster network is IPv4 only for now), found IPv6",
            )
        )
    elif bind.is_unspecified or bind.is_loopback:
        found.append(
            Problem(
                "RAY_CLUSTER_BIND",
                f"expected this node's own address on the cluster network, found {bind}",
                "Ray's ports must be reachable at one private address only, never a wildcard or loopback",
            )
        )
    elif bind not in subnet:
        found.append(Problem("RAY_CLUSTER_BIND", f"expected an address in RAY_CLUSTER_SUBNET {subnet}, found {bind}"))
    elif subnet.prefixlen > 29 or bind in (
        subnet.network_address,
        subnet.broadcast_address,
    ):
        found.append(
            Problem(
                "RAY_CLUSTER_BIND",
                f"expected a host address of a subnet of /29 or larger, found {bind} in {subnet}",
                "the network and broadcast addresses are not hosts; Docker also reserves one address beside it",
            )
        )
    return found

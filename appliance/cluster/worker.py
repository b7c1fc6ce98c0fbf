"""A worker machine's Ray node: the ``ray start`` command that joins it to the appliance's head.

Pure: the head's address, this node's name and resources in, the argv out. The control-plane token is never on
the command line or in the environment's values: Ray reads it from the file ``RAY_AUTH_TOKEN_PATH`` names
(``RAY_AUTH_MODE=token``, the same as the head), so a worker holding another token is refused by the head.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from appliance.cluster.placement import node_labels, node_name_problem
from appliance.errors import ApplianceError
from appliance.serve.head import GCS_PORT


@dataclass(frozen=True)
class HeadAddress:
    host: str
    port: int = GCS_PORT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_head_address(text: str) -> HeadAddress:
    """``HOST`` or ``HOST:PORT`` (an IPv6 address in brackets when a port follows); a clear error otherwise."""
    value = text.strip()
    host, port = value, GCS_PORT
    if value.startswith("["):
        inner, _, rest = value[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise ApplianceError(f"head address: expected [IPv6]:PORT, found {text!r}")
            port = _port(rest[1:], text)
    elif value.count(":") == 1:
        host, _, raw = value.partition(":")
        port = _port(raw, text)
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ApplianceError(f"head address: expected HOST or HOST:PORT, found {text!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ApplianceError(f"head address: expected an IPv6 address in brackets, found {text!r}") from None
    return HeadAddress(host, port)


def _port(raw: str, text: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ApplianceError(f"head address: expected a port 1-65535, found {raw!r} in {text!r}")
    return int(raw)


def worker_argv(
    head: HeadAddress,
    *,
    node_name: str,
    cpus: int,
    gpus: int,
    node_ip: str | None = None,
    metrics_port: int | None = None,
    gpu_memory_mib: int | None = None,
    ray: str = "ray",
) -> list[str]:
    """``ray start`` joining ``head`` as the node ``node_name`` with ``cpus`` logical CPUs and ``gpus`` GPUs;
    ``node_ip``: the address the other nodes reach this one at (Ray guesses it when none); ``metrics_port``: where
    the node exports its metrics (Ray picks a port when none; the head's relay finds it either way);
    ``gpu_memory_mib``: its smallest GPU's memory, labelled for the head's doctor (none on a CPU node)."""
    problem = node_name_problem(node_name)
    if problem:
        raise ApplianceError(f"node name: {problem}")
    if cpus < 1 or gpus < 0:
        raise ApplianceError(f"resources: expected cpus >= 1 and gpus >= 0, found cpus={cpus} gpus={gpus}")
    argv = [
        ray,
        "start",
        f"--address={head}",
        "--block",
        f"--num-cpus={cpus}",
        f"--num-gpus={gpus}",
        f"--labels={node_labels(node_name, gpu_memory_mib if gpus else None)}",
        "--disable-usage-stats",
    ]
    if node_ip:
        argv.append(f"--node-ip-address={node_ip}")
    if metrics_port:
        argv.append(f"--metrics-export-port={metrics_port}")
    return argv

"""The Ray nodes of the appliance and what runs where, for ``status``: ``nodes_view`` is pure (Ray's node and actor
tables in, one row per node out); ``python -m appliance.cluster.nodes`` runs inside the serve container (where Ray
is), prints the rows as JSON, and is what ``status`` executes there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from appliance.cluster.placement import NODE_LABEL, gpu_memory_of

_LOGGER = logging.getLogger(__name__)

REPLICA_PREFIX = "SERVE_REPLICA::"  # Serve's replica actors are named SERVE_REPLICA::<app>#<deployment>#<id>


def deployment_of_replica(actor_name: str) -> str | None:
    if not actor_name.startswith(REPLICA_PREFIX):
        return None
    parts = actor_name[len(REPLICA_PREFIX) :].split("#")
    return parts[1] if len(parts) >= 3 else None


def nodes_view(nodes: Iterable[Mapping[str, Any]], actors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per node (alive first, then by name): its name, address, state, CPUs/GPUs (total and free is not
    known here: total), and the Serve deployments with a live replica on it (sorted, each once)."""
    runs: dict[str, set[str]] = {}
    for actor in actors:
        if actor.get("State") != "ALIVE":
            continue
        deployment = deployment_of_replica(str(actor.get("Name") or ""))
        node_id = (actor.get("Address") or {}).get("NodeID")
        if deployment and node_id:
            runs.setdefault(node_id, set()).add(deployment)
    rows = []
    for node in nodes:
        resources = node.get("Resources") or {}
        rows.append(
            {
                "node": (node.get("Labels") or {}).get(NODE_LABEL) or "?",
                "address": node.get("NodeManagerAddress", ""),
                "state": "alive" if node.get("Alive") else "dead",
                "cpus": int(resources.get("CPU", 0)),
                "gpus": int(resources.get("GPU", 0)),
                "gpu_memory_mib": gpu_memory_of(node.get("Labels") or {}),
                "runs": sorted(runs.get(str(node.get("NodeID")), set())),
            }
        )
    return sorted(rows, key=lambda r: (r["state"] != "alive", r["node"], r["address"]))


def ask_serve(docker_host: str | None, containers: Iterable[Any], timeout_s: float = 60) -> list[dict[str, Any]] | None:
    """The Ray nodes and what runs where, asked inside the running serve container (Ray is reachable only there);
    None when serve is not running or did not answer (the reason is logged)."""
    from appliance.docker.engine import DockerEngine
    from appliance.docker.errors import ApplianceDockerError

    serve = next((c for c in containers if c.service == "serve" and c.status == "running"), None)
    if serve is None:
        return None
    try:
        with DockerEngine(docker_host, timeout=timeout_s) as engine:
            code, output = engine.exec(serve.id, ["python", "-m", "appliance.cluster.nodes"])
    except ApplianceDockerError as err:
        _LOGGER.warning("Ray nodes not listed: %s", err)
        return None
    line = output.strip().splitlines()[-1] if output.strip() else ""
    if code != 0 or not line.startswith("["):
        _LOGGER.warning("Ray nodes not listed: the serve container answered exit %s", code)
        return None
    nodes: list[dict[str, Any]] = json.loads(line)
    return nodes


def main() -> None:  # pragma: no cover - runs inside the serve container (tested end to end)
    import ray
    from ray._private import state

    # "auto": the cluster this container's head started (its address, on the cluster network when there is one)
    ray.init(address="auto", logging_level=logging.ERROR, log_to_driver=False)
    try:
        print(json.dumps(nodes_view(ray.nodes(), state.actors().values())))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

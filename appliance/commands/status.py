"""``python -m appliance status [--json]``: the compose project's services, their health and restarts."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from appliance.cluster.network import cluster_network
from appliance.commands.common import add_config_options, load

_LOGGER = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status",
        help="show the running stack's health",
        description="List the stack's services: state, health, restarts (Docker's and the "
        "watchdog's). Exit 0 when every service runs and is healthy, 1 otherwise.",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )
    parser.set_defaults(handler=_run)


def _watchdog(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads(path.read_text()).get("services", {}))
    except (OSError, ValueError):
        return {}


def _watchdog_column(container: object, record: dict[str, Any]) -> str:
    """What keeps the service up: the watchdog, or nobody (unwatched, or stopped by hand: Docker's restart policy
    never restarts a manual stop)."""
    stopped = getattr(container, "stopped_by_hand", False)
    if record.get("gave_up"):
        return "gave up"
    if record.get("stopped_by_operator") or (stopped and not getattr(container, "watched", True)):
        return "stopped by hand: start it"
    if not getattr(container, "watched", True):
        return "not watched (Docker restarts a crash)"
    return "watching"


def _run(args: argparse.Namespace) -> int:
    from appliance.docker.engine import DockerEngine
    from appliance.output import print_json, print_table, say

    config = load(args)
    project = config.settings.compose_project_name
    with DockerEngine(args.docker_host, timeout=5) as engine:
        containers = sorted(engine.project_containers(project), key=lambda c: c.service)
    watchdog = _watchdog(Path(config.settings.supervisor_state_file))
    rows = []
    for c in containers:
        record = watchdog.get(c.service, {})
        rows.append(
            {
                "service": c.service,
                "container": c.name,
                "state": c.status,
                "health": c.health or "-",
                "restarts": c.restart_count + len(record.get("restarts", [])),
                "watchdog": _watchdog_column(c, record),
            }
        )
    healthy = bool(containers) and all(c.running_and_healthy for c in containers)
    nodes = _nodes(args, containers) if cluster_network(config.settings) is not None else None
    if args.json:
        print_json({"project": project, "healthy": healthy, "services": rows, **({"nodes": nodes} if nodes else {})})
    elif not rows:
        say(f"no containers of project {project!r}: the stack is not up (python -m appliance up)", style="yellow")
    else:
        print_table(
            f"stack {project}",
            ["service", "container", "state", "health", "restarts", "watchdog"],
            [[str(r[k]) for k in ("service", "container", "state", "health", "restarts", "watchdog")] for r in rows],
        )
        if nodes:
            print_table(
                "Ray nodes",
                ["node", "address", "state", "CPUs", "GPUs", "runs"],
                [
                    [n["node"], n["address"], n["state"], str(n["cpus"]), str(n["gpus"]), ", ".join(n["runs"]) or "-"]
                    for n in nodes
                ],
            )
    return 0 if healthy else 1


def _nodes(args: argparse.Namespace, containers: list[Any]) -> list[dict[str, Any]] | None:
    from appliance.cluster.nodes import ask_serve

    return ask_serve(args.docker_host, containers)

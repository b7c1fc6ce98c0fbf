"""``python -m appliance join HEAD_ADDRESS`` / ``leave``: this machine as a Ray worker node of an appliance head.

``join`` runs on the worker machine, in its own copy of the repository with its own ``.env`` (RAY_NODE_NAME, and
RAY_CLUSTER_INTERFACE / RAY_CLUSTER_SUBNET / RAY_CLUSTER_BIND for its own address on the private network). It
copies the head's control-plane token (``--token-file``: the head's data/run/serve/ray_auth_token, brought over by
the operator) into data/run/worker/, builds the serve image, and starts the ``ray-worker`` service of the
``worker`` compose profile (compose/cluster.yml): ``ray start --address=HEAD --block`` with this machine's CPUs,
GPUs and node label, restarted by Docker. It returns once the head has taken the node, or fails with what the
worker's Ray said (a wrong token is refused by the head). ``leave`` stops and removes that container: Ray on the
head sees the node go, and what ran there is placed elsewhere or waits (the model is not ready, clients get 503).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cluster.network import cluster_network
from appliance.cluster.worker import parse_head_address, worker_argv
from appliance.commands.common import load
from appliance.commands.up import add_stack_options, stack_compose
from appliance.config import ApplianceConfig
from appliance.config.settings import Accelerator
from appliance.errors import ApplianceError
from appliance.output import say
from appliance.serve.head import METRICS_EXPORT_PORT
from appliance.stack.plan import (
    SERVE_HF_TOKEN,
    SERVE_RAY_TOKEN,
    WORKER_PROFILE,
    WORKER_RUN_SUBDIR,
    WORKER_SERVICE,
    StackPlan,
    plan_stack,
    socket_path,
    worker_env,
)

if TYPE_CHECKING:
    from appliance.docker.compose import ComposeCli

MIN_TOKEN_CHARS = 32
DRAIN_TIMEOUT_S = 60.0  # leave: how long Ray Serve gets to move the node's replicas
JOINED = "Ray runtime started"  # what `ray start` prints once the head took the node
# What the head answers a worker holding another token (its `ray start` keeps retrying: nothing to wait for).
REFUSED = "InvalidAuthToken"
# Lines of a failed or unreachable worker's `ray start` worth showing.
REFUSED_MARKERS = (REFUSED, "Unauthenticated", "Failed to connect to GCS", "Failed to get cluster ID", "Error")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    join = sub.add_parser(
        "join",
        help="join this machine to an appliance head as a Ray worker node",
        description=__doc__.split("\n\n")[1],
    )
    add_stack_options(join)
    join.add_argument("head", metavar="HEAD_ADDRESS", help="the head's RAY_CLUSTER_BIND address (HOST or HOST:PORT)")
    join.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="the head's Ray token (its data/run/serve/ray_auth_token); default: the one a previous join copied",
    )
    join.add_argument("--cpus", type=int, default=None, help="logical CPUs to offer (default: as the head counts)")
    join.add_argument("--gpus", type=int, default=None, help="GPUs to offer (default: every GPU nvidia-smi sees)")
    join.add_argument("--local", action="store_true", help="build from a local base image (as make up --local)")
    join.add_argument("--base-image", default="debian:bookworm-slim", help="base of the built image")
    join.add_argument("--no-build", action="store_true", help="use the serve image built before")
    join.add_argument("--timeout", type=float, default=180, help="seconds to wait for the head to take the node")
    join.set_defaults(handler=run_join)

    leave = sub.add_parser(
        "leave",
        help="stop this machine's Ray worker node (the head places its work elsewhere or waits)",
        description="Drains the node (Ray Serve moves its replicas to nodes that may run them), then stops and "
        "removes the ray-worker container that join started; data/run/worker is kept.",
    )
    add_stack_options(leave)
    leave.add_argument(
        "--drain-timeout",
        type=float,
        default=DRAIN_TIMEOUT_S,
        metavar="S",
        help=f"seconds Ray Serve gets to move this node's replicas elsewhere before it stops (default "
        f"{DRAIN_TIMEOUT_S:.0f}; 0: stop at once)",
    )
    leave.set_defaults(handler=run_leave)


def read_token(path: Path) -> bytes:
    """The head's Ray token from ``path``: a clear error when it is missing or too short to be one."""
    try:
        token = path.read_bytes().strip()
    except OSError as err:
        raise ApplianceError(f"--token-file {path}: cannot read it ({err.strerror})") from None
    if len(token) < MIN_TOKEN_CHARS or any(c in token for c in b" \t\r\n"):
        raise ApplianceError(
            f"--token-file {path}: expected the head's Ray token (one word of {MIN_TOKEN_CHARS}+ characters, "
            "the head's data/run/serve/ray_auth_token), found something else"
        )
    return token


def worker_files(config: ApplianceConfig, token: bytes) -> dict[str, bytes]:
    files = {SERVE_RAY_TOKEN: token + b"\n"}  # the same names as the head's: compose mounts them at the same paths
    if config.secrets.hf_token:
        files[SERVE_HF_TOKEN] = config.secrets.hf_token.encode()
    return files


def run_join(args: argparse.Namespace) -> int:
    from appliance.serve.head import logical_cpus
    from appliance.stack.render import prepare_models_dir, write_private_files

    config = load(args)
    network = cluster_network(config.settings)
    if network is None:
        raise ApplianceError(
            f"{config.files.env}: RAY_CLUSTER_INTERFACE, RAY_CLUSTER_SUBNET and RAY_CLUSTER_BIND are empty: set this "
            "machine's interface, subnet and its own address on the private network (docs/guides/scale-out.md)"
        )
    head = parse_head_address(args.head)
    run_dir = args.root.resolve() / "data" / "run" / WORKER_RUN_SUBDIR
    token_path = args.token_file or run_dir / SERVE_RAY_TOKEN
    if args.token_file is None and not token_path.exists():
        raise ApplianceError(
            "the head's Ray token is needed: pass --token-file (the head's data/run/serve/ray_auth_token)"
        )
    token = read_token(token_path)
    write_private_files(worker_files(config, token), run_dir)
    prepare_models_dir(args.root.resolve() / "models")  # local weights readable by the serve image's user
    gpus = args.gpus if args.gpus is not None else _gpus(config)
    cpus = args.cpus if args.cpus is not None else logical_cpus(config.settings, os.cpu_count() or 1)
    argv = worker_argv(
        head,
        node_name=config.settings.ray_node_name,
        cpus=cpus,
        gpus=gpus,
        node_ip=network.bind,
        metrics_port=METRICS_EXPORT_PORT,  # as the head's: one port to open for Prometheus on every node
        gpu_memory_mib=_gpu_memory_mib(gpus),
    )
    plan = plan_stack(
        config, rendered={}, local=args.local, base_image=args.base_image, docker_socket=socket_path(args.docker_host)
    )
    env = {**plan.env, **worker_env(argv, config.settings)}
    compose = stack_compose(args, config, StackPlan(plan.files, plan.profiles, env), profiles=(WORKER_PROFILE,))
    say(
        f"joining {head} as node '{config.settings.ray_node_name}' at {network.bind} ({cpus} logical CPUs, {gpus} GPUs)"
    )
    if not args.no_build:
        compose.run("build", "serve", timeout=7200, stream=True)
    compose.run("up", "-d", "--no-deps", "--force-recreate", WORKER_SERVICE, timeout=600)
    wait_joined(compose, args.timeout)
    say(f"node '{config.settings.ray_node_name}' joined {head}", style="green")
    return 0


def _gpus(config: ApplianceConfig) -> int:
    if config.accelerator is not Accelerator.GPU:
        return 0
    from appliance.config.gpus import detect_gpu_count

    return detect_gpu_count() or 0


def _gpu_memory_mib(gpus: int) -> int | None:
    """The smallest memory of the GPUs this worker gives Ray (nvidia-smi), for the head's doctor; None without."""
    if gpus < 1:
        return None
    from appliance.doctor.checks._gpu import query_gpus

    found = query_gpus() or []
    return min((g.total_bytes for g in found[:gpus]), default=0) // 2**20 or None


def wait_joined(compose: ComposeCli, timeout: float, interval: float = 2.0) -> None:
    """Until the worker's ``ray start`` says the head took it; what it said instead when it failed."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        logs = compose.run("logs", "--no-color", "--no-log-prefix", WORKER_SERVICE, timeout=60)
        if JOINED in logs:
            return
        if REFUSED in logs:
            break
        state = compose.run("ps", "--all", "--format", "{{.State}}", WORKER_SERVICE, timeout=60).strip()
        if state and state != "running":  # exited, or restarting after an exit
            break
        time.sleep(interval)
    compose.run("rm", "--force", "--stop", WORKER_SERVICE, timeout=120)
    if REFUSED in logs:
        raise ApplianceError(
            "the head refused this node's Ray token (InvalidAuthToken); the worker container was removed. Copy the "
            "head's data/run/serve/ray_auth_token and join again with --token-file"
        )
    said = last_said(logs)
    raise ApplianceError(
        f"the head did not take this node within the wait (the worker container was removed); its Ray said: {said}"
        " — check that the head's address is reachable from here on the cluster network and that its stack is up"
    )


def last_said(logs: str) -> str:
    """The last line of the worker's log worth showing, without Ray's timestamp prefix; "nothing" when empty."""
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    marked = [line for line in lines if any(m in line for m in REFUSED_MARKERS)] or lines
    if not marked:
        return "nothing"
    last = marked[-1]
    return last.split("] ", 1)[1] if last.startswith("[") and "] " in last else last


def drain(compose: ComposeCli, timeout_s: float) -> None:
    """Drain the running worker node (appliance.cluster.drain, inside its container) and say what moved; a
    worker not running, or a drain that fails, is said and the leave goes on."""
    state = compose.run("ps", "--all", "--format", "{{.State}}", WORKER_SERVICE, timeout=60).strip()
    if state != "running":
        return
    say(f"draining this node (up to {timeout_s:.0f} s): Ray Serve moves its replicas to nodes that may run them")
    try:
        out = compose.run(
            "exec",
            "-T",
            WORKER_SERVICE,
            "python",
            "-m",
            "appliance.cluster.drain",
            str(timeout_s),
            timeout=timeout_s + 120,
        )
        result = json.loads(out.strip().splitlines()[-1])
    except (ApplianceError, ValueError, IndexError) as err:
        say(f"not drained ({err}); stopping it anyway", style="yellow")
        return
    if not result.get("accepted"):
        say(f"Ray refused the drain ({result.get('reason') or 'no reason given'}); stopping it anyway", style="yellow")
        return
    if result.get("moved"):
        say(f"moved to other nodes: {', '.join(result['moved'])}")
    if result.get("stopped"):
        say(
            f"stopped, no other node runs them (their requests get 503 + Retry-After until a node that may run "
            f"them joins): {', '.join(result['stopped'])}",
            style="yellow",
        )
    if result.get("left"):
        say(
            f"still on this node after {result['seconds']} s, stopped with it: {', '.join(result['left'])}",
            style="yellow",
        )
    say(f"drained in {result['seconds']} s")


def run_leave(args: argparse.Namespace) -> int:
    config = load(args)
    plan = plan_stack(config, rendered={}, docker_socket=socket_path(args.docker_host))
    if cluster_network(config.settings) is None:
        raise ApplianceError(f"{config.files.env}: no cluster network is set: this machine has no worker node to stop")
    compose = stack_compose(args, config, plan, profiles=(WORKER_PROFILE,))
    if args.drain_timeout > 0:
        drain(compose, args.drain_timeout)
    compose.run("rm", "--force", "--stop", WORKER_SERVICE, timeout=300)
    say(f"node '{config.settings.ray_node_name}' left the cluster; data/run/worker is kept for the next join")
    return 0

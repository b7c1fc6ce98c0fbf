"""The serve container's process: a Ray head node, the Serve application deployed onto it, then waiting.

``ray_start_argv`` is pure (settings and the machine's cores in, the command line out); ``run_head``
starts ``ray start --head --block`` as a child, deploys once the head answers, and lives as long as the
head does: when Ray dies the container exits and Docker (or the supervisor) restarts it. SIGTERM stops
Ray cleanly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

from appliance.cluster.network import cluster_network
from appliance.cluster.placement import HEAD_RESOURCE, node_labels
from appliance.config.settings import Settings
from appliance.errors import ApplianceError

GCS_PORT = 6379
DASHBOARD_PORT = 8265
METRICS_EXPORT_PORT = 8080  # Prometheus's `ray` job scrapes serve:8080
HEAD_RESOURCE_UNITS = 1000
MIN_LOGICAL_CPUS = 8  # the ingress and PII replicas must fit beside the engines (logical CPUs are tokens)


def logical_cpus(settings: Settings, cores: int) -> int:
    """RAY_NUM_CPUS, or max(8, cores) when it is 0."""
    return settings.ray_num_cpus or max(MIN_LOGICAL_CPUS, cores)


def ray_start_argv(settings: Settings, *, cores: int, ray: str = "ray") -> list[str]:
    """``ray start --head`` for the container: every port fixed, the dashboard only when enabled."""
    argv = [
        ray,
        "start",
        "--head",
        "--block",
        f"--port={GCS_PORT}",
        f"--num-cpus={logical_cpus(settings, cores)}",
        f"--metrics-export-port={METRICS_EXPORT_PORT}",
        "--disable-usage-stats",
        f"--labels={node_labels(settings.ray_node_name)}",
        # what must stay on the head (the ingress, PII masking: they hold the audit log and the API keys)
        f'--resources={{"{HEAD_RESOURCE}": {HEAD_RESOURCE_UNITS}}}',
    ]
    network = cluster_network(settings)
    if network is not None:  # the other nodes reach this one at its own address on the cluster network
        argv.append(f"--node-ip-address={network.bind}")
    if settings.ray_dashboard_enabled:
        argv += ["--include-dashboard=true", "--dashboard-host=0.0.0.0", f"--dashboard-port={DASHBOARD_PORT}"]
    else:
        argv += ["--include-dashboard=false"]
    return argv


def gcs_address(settings: Settings) -> str:
    """Where processes in the serve container reach the head's GCS: its address on the cluster network when it has
    one (a driver that came in over 127.0.0.1 would take itself for another node), else loopback."""
    network = cluster_network(settings)
    return f"{network.bind if network is not None else '127.0.0.1'}:{GCS_PORT}"


def direct_ingress(settings: Settings) -> bool:
    """Direct ingress binds one port per ingress replica: with one replica it is SERVE_HTTP_PORT itself."""
    return settings.serve_direct_ingress and settings.serve_ingress_replicas == 1


def serving_env(settings: Settings) -> dict[str, str]:
    """Environment of ``ray start`` (inherited by the controller and every replica) and of the deploying driver.

    ``RAY_worker_niceness`` (RAY_WORKER_NICENESS): Ray starts its workers, and so the engines (a worker and its
    children), at that niceness; 15, Ray's own default, unless the operator says otherwise.
    Direct ingress (``RAY_SERVE_THROUGHPUT_OPTIMIZED``): the ingress replica itself listens on SERVE_HTTP_PORT
    (the range MIN..MAX is half-open) and replicas talk gRPC; Serve's own proxy moves to :func:`proxy_port`.
    """
    env = {"RAY_worker_niceness": str(settings.ray_worker_niceness)}
    if direct_ingress(settings):
        port = settings.serve_http_port
        env.update(
            {
                "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
                "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
                "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),
            }
        )
    return env


def proxy_port(settings: Settings) -> int:
    """Where Serve's HTTP proxy listens: SERVE_HTTP_PORT, or beside it when the ingress answers there itself."""
    return settings.serve_http_port + 2 if direct_ingress(settings) else settings.serve_http_port


def run_head(settings: Settings, deploy: Callable[[], None], *, wait_s: float = 120.0) -> int:
    """Start the head, deploy, then wait for the head to exit; returns its exit status."""
    ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    os.environ.update(serving_env(settings))  # for ray start's processes and for this driver
    head = subprocess.Popen(ray_start_argv(settings, cores=os.cpu_count() or 1, ray=ray))

    def stop(signum: int, _frame: FrameType | None) -> None:
        head.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + wait_s
    while True:
        if head.poll() is not None:
            raise ApplianceError(f"ray start --head exited with status {head.returncode} before it answered")
        check = subprocess.run([ray, "status", f"--address={gcs_address(settings)}"], capture_output=True, check=False)
        if check.returncode == 0:
            break
        if time.monotonic() > deadline:
            head.terminate()
            raise ApplianceError(f"the Ray head did not answer within {wait_s:.0f} s")
        time.sleep(1.0)
    try:
        deploy()
    except BaseException:
        head.terminate()
        head.wait(timeout=60)
        raise
    return head.wait()

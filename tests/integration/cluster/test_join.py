"""Two real Ray nodes on this machine (loopback only): a worker joins the head with ``worker_argv`` and the
shared control-plane token; a model's bundle label selector (``bundle_label_selector``) places a Serve replica
on the named worker; a worker holding another token is refused.

Each node is a ``ray start --block`` in its own process group (stopped by signal: ``ray stop`` would stop every
Ray on the machine). The Ray driver runs in a subprocess so this test process never holds a Ray connection.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cluster.placement import bundle_label_selector, node_labels
from appliance.cluster.worker import HeadAddress, worker_argv
from tests.helpers import free_port

RAY = str(Path(sys.executable).with_name("ray"))
JOIN_TIMEOUT_S = 120

DRIVER = r"""
import json, sys, time
import ray
from ray import serve

address, selector = sys.argv[1], json.loads(sys.argv[2])
ray.init(address=address, logging_level="ERROR")
deadline = time.monotonic() + 120
while len([n for n in ray.nodes() if n["Alive"]]) < 2:
    assert time.monotonic() < deadline, "the worker never showed up"
    time.sleep(1)
nodes = {n["NodeID"]: n.get("Labels", {}).get("appliance.io/node") for n in ray.nodes() if n["Alive"]}

@serve.deployment(ray_actor_options={"num_cpus": 0.1}, placement_group_bundles=[{"CPU": 0.1}],
                  placement_group_bundle_label_selector=selector)
class Where:
    def __call__(self) -> str:
        return ray.get_runtime_context().get_node_id()

serve.start(proxy_location="Disabled")
handle = serve.run(Where.bind(), name="where", route_prefix=None)
placed = handle.remote().result(timeout_s=60)
print("RESULT " + json.dumps({"nodes": nodes, "placed_on": nodes.get(placed)}), flush=True)
serve.shutdown()
"""


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:  # the group outlives its leader when `ray start` left daemons behind
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen) -> str:
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(1)
    _signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=10)
    return proc.stdout.read() if proc.stdout else ""


def _env(token_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture
def head(tmp_path: Path) -> Iterator[tuple[HeadAddress, Path]]:
    token = tmp_path / "ray_auth_token"
    token.write_text(secrets.token_hex(32))
    port = free_port()
    temp = Path(f"/tmp/rj{os.getpid()}")  # Ray's socket paths must stay short
    argv = [
        RAY,
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--labels={node_labels('head')}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    proc = _start(argv, _env(token))
    address = HeadAddress("127.0.0.1", port)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while (
        subprocess.run(
            [RAY, "status", f"--address={address}"], env=_env(token), capture_output=True, check=False
        ).returncode
        != 0
    ):
        assert proc.poll() is None and time.monotonic() < deadline, _stop(proc)[-3000:]
        time.sleep(1)
    yield address, token
    _stop(proc)
    shutil.rmtree(temp, ignore_errors=True)


def test_a_worker_joins_and_a_pinned_replica_runs_on_it(head: tuple[HeadAddress, Path]) -> None:
    address, token = head
    started = time.monotonic()
    worker = _start(
        worker_argv(address, node_name="worker-1", cpus=1, gpus=0, node_ip="127.0.0.1", ray=RAY), _env(token)
    )
    try:
        selector = json.dumps(bundle_label_selector(["worker-1"]))
        driver = subprocess.run(
            [sys.executable, "-c", DRIVER, str(address), selector],
            env=_env(token),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert driver.returncode == 0, driver.stderr[-3000:] + _stop(worker)[-2000:]
        result = [line for line in driver.stdout.splitlines() if line.startswith("RESULT ")]  # Ray logs to stdout too
        assert len(result) == 1, driver.stdout[-3000:]
        seen = json.loads(result[0].removeprefix("RESULT "))
        print(f"\njoined and placed in {time.monotonic() - started:.1f} s: {seen}")
        assert sorted(seen["nodes"].values()) == ["head", "worker-1"], seen
        assert seen["placed_on"] == "worker-1", seen
    finally:
        _stop(worker)


ALIVE = (
    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
    "print('RESULT', sorted(n.get('Labels', {}).get('appliance.io/node', '?') for n in ray.nodes() if n['Alive']))"
)


def test_a_worker_with_another_token_is_refused(head: tuple[HeadAddress, Path], tmp_path: Path) -> None:
    address, token = head
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    argv = [
        a
        for a in worker_argv(address, node_name="intruder", cpus=1, gpus=0, node_ip="127.0.0.1", ray=RAY)
        if a != "--block"
    ]
    started = time.monotonic()
    joining = _start(argv, _env(wrong))  # its own process group: whatever it left running is stopped below
    try:
        code: int | None = joining.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = None
    output = _stop(joining)
    print(f"\nwrong token: exit {code} after {time.monotonic() - started:.1f} s: {output.strip().splitlines()[-1:]}")
    assert code != 0, output[-3000:]
    alive = subprocess.run(
        [sys.executable, "-c", ALIVE, str(address)],
        env=_env(token),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert alive.returncode == 0, alive.stderr[-3000:]
    assert "RESULT ['head']" in alive.stdout.splitlines(), alive.stdout[-3000:]

"""The doctor's I/O, one small function per kind of observation (unit tests patch these)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from typing import Any


def run_command(argv: list[str], timeout: float) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr); None when the program is missing or did not answer in time."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.returncode, result.stdout, result.stderr


NVIDIA_QUERY = "index,name,memory.total,memory.free,driver_version"


def nvidia_smi_query(timeout: float = 5.0) -> str | None:
    """``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` output; None without a working driver.

    The timeout is the GPU count's (config/gpus.py): a driver without persistence mode can take over a second
    to answer its first query, and 1 s made doctor report "no driver" where validate had counted the GPUs."""
    result = run_command(["nvidia-smi", f"--query-gpu={NVIDIA_QUERY}", "--format=csv,noheader,nounits"], timeout)
    if result is None or result[0] != 0:
        return None
    return result[1]


def can_bind(address: str, port: int) -> OSError | None:
    """None when ``address:port`` can be bound now, else the error (in use, permission)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as err:
            return err
    return None


def resolve(name: str) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}


def local_addresses() -> set[str]:
    found = {"127.0.0.1", "::1"}
    try:
        found |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    result = run_command(["hostname", "-I"], 1.0)
    if result and result[0] == 0:
        found |= set(result[1].split())
    return found


def http_get_json(
    url: str, timeout: float, context: ssl.SSLContext | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET; raises OSError when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read().decode(errors="replace")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def open_engine(docker_host: str | None, timeout: float = 2.0) -> Any:
    """A DockerEngine with a short timeout (imported lazily: appliance.docker is the door)."""
    from appliance.docker.engine import DockerEngine

    return DockerEngine(docker_host, timeout=timeout)


def docker_snapshot(docker_host: str | None) -> dict[str, Any]:
    """``docker version`` and ``docker info`` in one connection."""
    with open_engine(docker_host) as engine:
        return {"version": engine.version(), "info": engine.info()}

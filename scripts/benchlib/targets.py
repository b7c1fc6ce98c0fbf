"""The sides of the overhead benchmark, each started in a group the benchmark can freeze.

- raw vLLM: vLLM's own OpenAI server with the engine arguments the appliance derives for the same model
  (:func:`appliance.serve.builder.engine_kwargs` and ``runtime_env``), so both engines get the same
  max_model_len, KV-cache space and load format;
- the Serve app on the host: ``ray start`` + ``python -m appliance serve`` (quick to iterate on);
- the compose stack: ``make up --local`` from a copy of the repository, reached through nginx + TLS — what
  users run, and the figure of record.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchlib.client import MODEL
from benchlib.sides import ContainerGroup, Group, HostGroup

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from appliance.config import ApplianceConfig, ConfigFiles, load_config  # noqa: E402
from appliance.serve.builder import engine_kwargs, runtime_env  # noqa: E402
from appliance.serve.head import proxy_port, serving_env  # noqa: E402
from tests.helpers import free_port as free_port  # noqa: E402  (re-exported: the bench scripts take it from here)
from tests.helpers import set_line, stop_ray  # noqa: E402

CACHE = ROOT / ".cache" / "tiny-model"
BENCH_STACK = ROOT / ".cache" / "bench-stack"
MODELS_YAML = (
    "models:\n  - id: {model}\n    source: {source}\n    max_model_len: 1024\n"
    "    gpu_memory_utilization: 0.3\n    max_tokens_cap: 4096\n"
)
# the bench's own load must not meet the per-address limits a user's traffic meets
BENCH_LIMITS = {"NGINX_RATE_LIMIT_RPM": "600000", "NGINX_RATE_LIMIT_BURST": "10000", "NGINX_CONN_LIMIT": "1024"}


@dataclass
class Side:
    name: str
    url: str
    key: str | None
    group: Group
    cafile: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def wait_http(url: str, timeout: float, ok: int = 200, verify: Any = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5, verify=verify).status_code == ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer {ok} within {timeout:.0f}s")


def write_config(work: Path, model_source: str, values: dict[str, str]) -> ApplianceConfig:
    """.env (the example's defaults plus ``values``), .secrets and models.yaml in ``work``; the loaded config."""
    shutil.copyfile(ROOT / ".env.example", work / ".env")
    shutil.copyfile(ROOT / ".secrets.example", work / ".secrets")
    (work / ".secrets").chmod(0o600)
    for key, value in {"ACCELERATOR": "cpu", **values}.items():
        set_line(work / ".env", key, value)
    (work / "models.yaml").write_text(MODELS_YAML.format(model=MODEL, source=model_source))
    files = ConfigFiles(env=work / ".env", secrets=work / ".secrets", models=work / "models.yaml")
    return load_config(files, gpu_count=0)


def vllm_cli(kwargs: dict[str, Any]) -> list[str]:
    """vLLM server flags for engine keyword arguments (True → a bare flag, False/None → left out)."""
    argv: list[str] = []
    for name, value in kwargs.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    return argv


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def raw_vllm_command(model_dir: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment of vLLM's OpenAI server with the appliance's engine arguments and
    engine environment for the same model (CPU mode, the .env example's defaults)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), str(model_dir), {})
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *vllm_cli(engine_kwargs(config.models[0])),
    ]
    return cmd, dict(runtime_env(config.accelerator).get("env_vars", {}))


@contextmanager
def raw_vllm(model_dir: Path, port: int) -> Iterator[Side]:
    """vLLM's OpenAI server with the appliance's engine arguments for the same model."""
    group = HostGroup("raw")
    cmd, extra_env = raw_vllm_command(model_dir, port)
    env = {**os.environ, **extra_env}
    log = open(Path(tempfile.gettempdir()) / "bench_raw_vllm.log", "w")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=group.enter
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 600)
        yield Side(
            "raw vLLM",
            f"http://127.0.0.1:{port}",
            None,
            group,
            notes={"command": " ".join(cmd[1:]), "env": extra_env},
        )
    finally:
        group.thaw()
        _stop_group(proc)
        log.close()
        group.remove()


@contextmanager
def host_appliance(
    model_dir: Path, work: Path, port: int, settings: dict[str, str] | None = None, group: HostGroup | None = None
) -> Iterator[tuple[str, str]]:
    """Ray head + ``python -m appliance serve`` with one model, auth and audit on; yields (url, key).

    ``settings``: .env overrides (the serving env the stack ships: direct ingress on SERVE_HTTP_PORT unless
    SERVE_DIRECT_INGRESS=false). ``group``: the cgroup every Ray process is started in.
    """
    loaded = write_config(
        work,
        str(model_dir),
        {
            "AUDIT_LOG_FILE": str(work / "audit.log"),
            "AUTH_ENABLED": "true",
            "SERVE_HTTP_PORT": str(port),
            **(settings or {}),
        },
    ).settings
    token = work / "ray_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "APPLIANCE_GPU_COUNT": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        **serving_env(loaded),
    }
    cli = [sys.executable, "-m", "appliance"]
    key = subprocess.run(
        [*cli, "keys", "create", "bench", "--role", "admin"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    gcs = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={gcs}",
            "--num-cpus=8",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={work / 'ray'}",
        ],
        env=env,
        check=True,
        capture_output=True,
        preexec_fn=group.enter if group else None,
    )
    try:
        subprocess.run(
            [*cli, "serve", "--ray-address", f"127.0.0.1:{gcs}", "--http-port", str(proxy_port(loaded))],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        wait_http(f"http://127.0.0.1:{port}/health/ready", 900)
        yield f"http://127.0.0.1:{port}", key
    finally:
        if group is not None:
            group.thaw()
        stop_ray(work / "ray")


@contextmanager
def host_side(model_dir: Path, port: int, settings: dict[str, str] | None = None, label: str = "") -> Iterator[Side]:
    group = HostGroup("host" + (f"-{abs(hash(label))}" if label else ""))
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            host_appliance(model_dir, Path(tmp), port, settings, group=group) as (url, key),
        ):
            yield Side("host Serve app" + label, url, key, group)
    finally:
        group.remove()


@contextmanager
def docker_session() -> Iterator[Any]:
    """The Docker Engine on the prepared data root (tests.e2e_docker.prepare built the images there)."""
    from tests.e2e_docker.prepare import DATA_ROOT
    from tests.integration.docker.harness import docker_engine

    if not (DATA_ROOT / "data").is_dir():
        raise SystemExit(
            f"bench: no prepared images in {DATA_ROOT}: run python -m tests.e2e_docker.prepare first (make bench does)"
        )
    with docker_engine(DATA_ROOT, keep=True, busybox=False, extra_args=()) as engine:
        yield engine


@contextmanager
def stack_side(
    model_dir: Path, engine: Any, settings: dict[str, str] | None = None, label: str = "", variant: int = 0
) -> Iterator[Side]:
    """``make up --local`` (CPU mode, local images built by tests.e2e_docker.prepare), reached through nginx + TLS.

    ``settings``: .env values over the example's defaults; ``variant`` > 0: a compose project of its own (its
    images are tagged from the same build cache), so that several configurations can take turns."""
    import ssl

    import docker

    from tests.e2e_docker.prepare import PROJECT
    from tests.e2e_docker.stack import KEY_RE, copy_stack, make

    project = PROJECT if not variant else f"{PROJECT}-v{variant}"
    root = BENCH_STACK.with_name(f"{BENCH_STACK.name}-{project}")
    copy_stack(root)
    shutil.copytree(model_dir, root / "models" / MODEL)
    https_port = free_port()
    write_config(
        root,
        f"/appliance/models/{MODEL}",
        {
            "BIND_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "HTTPS_PORT": str(https_port),
            "COMPOSE_PROJECT_NAME": project,
            **BENCH_LIMITS,
            **(settings or {}),
        },
    )
    client = docker.DockerClient(base_url=engine.url, timeout=120)
    try:
        up = make(root, engine, "up", timeout=3000)
        if up.returncode != 0:
            raise SystemExit(f"bench: make up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        match = KEY_RE.search(up.stdout)
        if not match:
            raise SystemExit(f"bench: make up printed no admin key:\n{up.stdout[-3000:]}")
        cafile = root / "data" / "certs" / "live" / "localhost" / "fullchain.pem"
        url = f"https://127.0.0.1:{https_port}"
        wait_http(url + "/health/ready", 900, verify=ssl.create_default_context(cafile=str(cafile)))
        group = ContainerGroup(client, project, published=(https_port,))
        yield Side(
            "compose stack (nginx + TLS)" + label,
            url,
            match.group(1),
            group,
            str(cafile),
            notes={
                "containers": sorted(c.name for c in group.containers),
                "settings": settings or {},
                "docker_proxy_pids": group.proxies,
            },
        )
    finally:
        try:
            ContainerGroup(client, project).thaw()
        finally:
            make(root, engine, "down", timeout=600)
            client.close()

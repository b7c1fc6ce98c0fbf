#!/usr/bin/env python3
"""What the appliance's serving path costs against raw vLLM: one run, same machine, same tiny model.

    python scripts/bench_overhead.py [--concurrency 1,8,32] [--tokens 128] [--out bench-results]

Streams chat completions (``max_tokens`` output tokens each, ``ignore_eos`` so every request generates
exactly that many) at each concurrency level, first against vLLM's own OpenAI server, then against the
appliance (Ray Serve + the appliance ingress with auth and audit on, PII off), one after the other so they
never share the CPU. Prints a table (output tok/s, TTFT p50/p99, appliance ÷ raw) and writes it as JSON
and a PNG plot under ``--out``.

Ray listens on every interface, so run this through ``make bench``, which gives it a loopback-only network
namespace (scripts/ci/isolated.sh); it refuses to start otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from appliance.config import ConfigFiles, load_config  # noqa: E402
from appliance.serve.head import proxy_port, serving_env  # noqa: E402
from tests.helpers import stop_ray  # noqa: E402
CACHE = ROOT / ".cache" / "tiny-model"
MODEL = "tiny"
# Experiments: BENCH_RAY_ENV="K=V …" adds to Ray's environment; BENCH_SETTINGS="SERVE_DIRECT_INGRESS=false …"
# overrides .env settings of the appliance under test.
EXTRA_RAY_ENV: dict[str, str] = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_RAY_ENV", "").split() if "=" in item
)
EXTRA_SETTINGS: dict[str, str] = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_SETTINGS", "").split() if "=" in item
)


@dataclass
class Level:
    target: str
    concurrency: int
    requests: int
    output_tokens: int
    seconds: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    errors: int
    stream_tok_s_p50: float = 0.0  # per stream, from its first token to its last (no queueing, no TTFT)

    @property
    def tok_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def one_request(client: httpx.AsyncClient, url: str, key: str | None, tokens: int,
                      content: str = "Tell me a story.") -> tuple[float, int, float]:  # fmt: skip
    """(time to first token in s, output tokens, total time in s) for one streamed chat completion."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": tokens,
            "stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.perf_counter()
    ttft = None
    produced = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        buffer = b""
        async for data in response.aiter_bytes():  # split on b"\n" only: generated text may hold U+2028
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and ttft is None and chunk["choices"][0].get("delta", {}).get("content"):
                    ttft = time.perf_counter() - started
                if chunk.get("usage"):
                    produced = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - started
    return (ttft if ttft is not None else total), produced, total


async def run_level(target: str, url: str, key: str | None, concurrency: int, tokens: int, requests: int,
                    content: str = "Tell me a story.") -> Level:  # fmt: skip
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await asyncio.gather(*(one_request(client, url, key, 8, content) for _ in range(min(concurrency, 4))))  # warm
        queue = list(range(requests))
        ttfts: list[float] = []
        rates: list[float] = []
        produced = 0
        errors = 0

        async def worker() -> None:
            nonlocal produced, errors
            while queue:
                queue.pop()
                try:
                    ttft, count, total = await one_request(client, url, key, tokens, content)
                    ttfts.append(ttft)
                    if count > 1 and total > ttft:
                        rates.append((count - 1) / (total - ttft))
                    produced += count
                except httpx.HTTPError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Level(target, concurrency, requests, produced, seconds, percentile(ttfts, 50) * 1000,
                 percentile(ttfts, 99) * 1000, errors, percentile(rates, 50))  # fmt: skip


def wait_http(url: str, timeout: float, ok: int = 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer {ok} within {timeout:.0f}s")


@contextmanager
def raw_vllm(model_dir: Path, port: int):
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024",
           "--gpu-memory-utilization", "0.3"]  # fmt: skip
    log = open(Path(tempfile.gettempdir()) / "bench_raw_vllm.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 600)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@contextmanager
def appliance(model_dir: Path, work: Path, port: int, settings: dict[str, str] | None = None):
    """Ray head + ``python -m appliance serve`` with one model, auth and audit on (``settings``: .env overrides,
    default BENCH_SETTINGS)."""
    shutil.copyfile(ROOT / ".env.example", work / ".env")
    shutil.copyfile(ROOT / ".secrets.example", work / ".secrets")
    (work / ".secrets").chmod(0o600)
    _set(work / ".env", {"ACCELERATOR": "cpu", "AUDIT_LOG_FILE": str(work / "audit.log"), "AUTH_ENABLED": "true"})
    (work / "models.yaml").write_text(f"models:\n  - id: {MODEL}\n    source: {model_dir}\n    max_model_len: 1024\n"
                                      "    gpu_memory_utilization: 0.3\n    max_tokens_cap: 4096\n")  # fmt: skip
    token = work / "ray_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "APPLIANCE_GPU_COUNT": "0",
           "RAY_USAGE_STATS_ENABLED": "0", **EXTRA_RAY_ENV}  # fmt: skip
    # the serving env the stack ships (direct ingress on SERVE_HTTP_PORT unless SERVE_DIRECT_INGRESS=false)
    _set(work / ".env", {"SERVE_HTTP_PORT": str(port), **(EXTRA_SETTINGS if settings is None else settings)})
    loaded = load_config(ConfigFiles(env=work / ".env", secrets=work / ".secrets", models=work / "models.yaml"),
                         gpu_count=0).settings  # fmt: skip
    env.update(serving_env(loaded))
    cli = [sys.executable, "-m", "appliance"]
    key = subprocess.run([*cli, "keys", "create", "bench", "--role", "admin"], cwd=work, env=env, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    gcs = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "start", "--head", f"--port={gcs}", "--num-cpus=8", "--node-ip-address=127.0.0.1",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={work / 'ray'}"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    try:
        subprocess.run([*cli, "serve", "--ray-address", f"127.0.0.1:{gcs}", "--http-port", str(proxy_port(loaded))],
                       cwd=work,
                       env=env, check=True, capture_output=True)  # fmt: skip
        wait_http(f"http://127.0.0.1:{port}/health/ready", 900)
        yield f"http://127.0.0.1:{port}", key
    finally:
        stop_ray(work / "ray")


def _set(path: Path, values: dict[str, str]) -> None:
    lines = [line for line in path.read_text().splitlines() if line.split("=", 1)[0] not in values]
    path.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")


def render(levels: list[Level], out: Path) -> str:
    raw = {lv.concurrency: lv for lv in levels if lv.target == "raw vLLM"}
    rows = ["| concurrency | raw vLLM tok/s | raw TTFT p50 / p99 ms | appliance tok/s | appliance TTFT p50 / p99 ms "
            "| tok/s ratio | TTFT p50 Δ ms |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for lv in (lv for lv in levels if lv.target == "appliance"):
        base = raw.get(lv.concurrency)
        if base is None:
            continue
        rows.append(f"| {lv.concurrency} | {base.tok_s:,.0f} | {base.ttft_p50_ms:,.0f} / {base.ttft_p99_ms:,.0f} | "
                    f"{lv.tok_s:,.0f} | {lv.ttft_p50_ms:,.0f} / {lv.ttft_p99_ms:,.0f} | "
                    f"{lv.tok_s / base.tok_s:.2f} | {lv.ttft_p50_ms - base.ttft_p50_ms:+,.0f} |")  # fmt: skip
    table = "\n".join(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_overhead.json").write_text(json.dumps([asdict(lv) | {"tok_s": lv.tok_s} for lv in levels], indent=2))
    (out / "bench_overhead.md").write_text(table + "\n")
    _plot(levels, out / "bench_overhead.png")
    return table


def _plot(levels: list[Level], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for target, marker in (("raw vLLM", "o"), ("appliance", "s")):
        points = sorted((lv.concurrency, lv.tok_s, lv.ttft_p50_ms) for lv in levels if lv.target == target)
        if not points:
            continue
        xs = [p[0] for p in points]
        left.plot(xs, [p[1] for p in points], marker=marker, label=target)
        right.plot(xs, [p[2] for p in points], marker=marker, label=target)
    for axis, title, unit in ((left, "Output throughput", "tokens/s"), (right, "Time to first token (p50)", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent streams")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle("Appliance serving path vs raw vLLM (tiny model, CPU, streaming)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request")
    parser.add_argument("--requests", type=int, default=0, help="requests per level (default: max(16, 4 × c))")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where the table, JSON, PNG go")
    args = parser.parse_args(argv)
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        print("bench_overhead: run it through `make bench` (a loopback-only network namespace): Ray listens on "
              "every interface", file=sys.stderr)  # fmt: skip
        return 2
    levels_c = [int(c) for c in args.concurrency.split(",")]
    if not (CACHE / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE)], check=True)
    results: list[Level] = []

    def measure(target: str, url: str, key: str | None) -> None:
        for c in levels_c:
            n = args.requests or max(16, 4 * c)
            level = asyncio.run(run_level(target, url, key, c, args.tokens, n))
            print(f"  {target:>9} c={c:<3} {level.tok_s:8.0f} tok/s  TTFT p50 {level.ttft_p50_ms:6.0f} ms  "
                  f"p99 {level.ttft_p99_ms:6.0f} ms  errors {level.errors}", flush=True)  # fmt: skip
            results.append(level)

    if os.environ.get("BENCH_SKIP_RAW") != "1":
        print("raw vLLM OpenAI server …", flush=True)
        with raw_vllm(CACHE, free_port()) as url:
            measure("raw vLLM", url, None)
    print("appliance (Ray Serve + ingress, auth + audit on) …", flush=True)
    with tempfile.TemporaryDirectory() as tmp, appliance(CACHE, Path(tmp), free_port()) as (url, key):
        measure("appliance", url, key)
    print()
    print(render(results, args.out))
    print(f"\nwritten: {args.out / 'bench_overhead.md'}, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What the edge costs: the same small request straight to a backend vs through nginx (TLS 1.3, rendered
appliance config with rate limits raised out of the way), at a few concurrency levels. One run, this machine.

    python scripts/bench_edge.py [--concurrency 1,8,32] [--requests 2000] [--out bench-results]

Prints a table (requests/s, latency p50/p99 in ms) and writes it as JSON, Markdown and a PNG under --out.
Everything listens on 127.0.0.1; run it through `make bench` (a loopback-only network namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402
from tests.integration.edge.conftest import make_edge, start_backend, stop  # noqa: E402


async def level(url: str, path: str, concurrency: int, requests: int, verify: bool | ssl.SSLContext) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, verify=verify, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                started = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(min(concurrency, 4))))  # warm the connections
        latencies.clear()
        todo = iter(range(requests))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        backend_port = free_port()
        backend = start_backend(backend_port)
        edge = None
        try:
            edge = make_edge(
                Path(tmp),
                backend_port,
                NGINX_RATE_LIMIT_RPM="6000000",
                NGINX_RATE_LIMIT_BURST="1000000",
                NGINX_CONN_LIMIT="60000",
            )
            tls = ssl.create_default_context(cafile=str(edge.cert_file))
            for c in levels:
                direct = asyncio.run(level(f"http://127.0.0.1:{backend_port}", "/v1/echo", c, args.requests, False))
                edged = asyncio.run(level(edge.base, "/v1/echo", c, args.requests, tls))
                rows.append({"concurrency": c, "direct": direct, "nginx": edged})
        finally:
            if edge is not None:
                stop(edge.proc)
            stop(backend)
    lines = [
        "| concurrency | direct req/s | via nginx req/s | direct p50 / p99 ms | via nginx p50 / p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        d, n = row["direct"], row["nginx"]
        lines.append(
            f"| {row['concurrency']} | {d['rps']} | {n['rps']} | {d['p50_ms']} / {d['p99_ms']} | "
            f"{n['p50_ms']} / {n['p99_ms']} | {d['errors'] + n['errors']} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_edge.json").write_text(json.dumps(rows, indent=2))
    (args.out / "bench_edge.md").write_text("# Edge overhead (GET /v1/echo, small JSON answer)\n\n" + table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["concurrency"] for r in rows]
        ax.plot(xs, [r["direct"]["rps"] for r in rows], marker="o", label="direct (HTTP)")
        ax.plot(xs, [r["nginx"]["rps"] for r in rows], marker="o", label="via nginx (TLS 1.3)")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("requests/s")
        ax.set_xscale("log", base=2)
        ax.legend()
        ax.set_title("Edge overhead")
        fig.tight_layout()
        fig.savefig(args.out / "bench_edge.png", dpi=100)
    except ImportError:
        print("bench_edge: matplotlib missing; no PNG (pip install -e '.[bench]')", file=sys.stderr)
    return 1 if any(r["direct"]["errors"] or r["nginx"]["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

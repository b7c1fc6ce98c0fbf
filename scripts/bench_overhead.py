#!/usr/bin/env python3
"""What the appliance's serving path costs against raw vLLM, measured fairly, side by side in one run.

    python scripts/bench_overhead.py [--targets stack,host] [--concurrency 1,8,32] [--rounds 3]
                                     [--tokens 128] [--out bench-results]

Sides: raw vLLM's OpenAI server (the reference, with the appliance's engine arguments for the same tiny
model), the compose stack as ``make up --local`` runs it, reached through nginx + TLS (``stack``: the figure
of record), and the Serve app started on the host (``host``: quick to iterate on). Every side is started
once, then frozen; in each round and at each concurrency level the sides take turns (the order reverses
every round): the side measured is thawed, warmed up, measured, frozen again. Nothing else of the benchmark
runs meanwhile, and the frozen sides' CPU use during each measurement is recorded (it must be ~0).

Load: streamed chat completions, ``--tokens`` output tokens each (``ignore_eos``), exactly c in flight,
max(16, 4c) per level; TTFT is the time to the first SSE event with text. Auth and audit are on in the
appliance, PII off. CPU: every process of a side (its cgroup), and the part outside the vLLM engine
processes (EngineCore / Worker), per 1,000 streamed tokens.

Prints per level the median and min–max over the rounds of each side's tok/s, of appliance ÷ raw (taken
within each round) and of the TTFT p50 difference; writes bench_overhead.{md,json,png} and the run's
conditions into ``--out``. Run it through ``make bench`` (a loopback-only network namespace, as root: Ray
listens on every interface, and freezing uses cgroups).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib.client import run_level
from benchlib.sides import processes_cpu_ns
from benchlib.targets import CACHE, ROOT, Side, docker_session, free_port, host_side, raw_vllm, stack_side

SETTLE_S = 1.0  # after a thaw, before the warm-up: let the thawed side's timers catch up
RAW = "raw vLLM"


def _client_cpu_ns() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def major_faults() -> int:
    """Major page faults on the whole machine so far: pages read back from disk (this VM's kernel pages out
    memory that went cold, e.g. of a side that was frozen, and a thawed side can stall on reading it back)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        if line.startswith("pgmajfault "):
            return int(line.split()[1])
    return 0


def measure(side: Side, others: list[Side], c: int, tokens: int, requests: int) -> dict[str, Any]:
    """One level on one side (thawed here, frozen again after); its Level and CPU figures."""
    side.group.thaw()
    time.sleep(SETTLE_S)
    load = os.getloadavg()[0]
    engines = side.group.engine_pids()
    marks: dict[str, tuple[int, int, int, list[int], int]] = {}

    def mark(when: str) -> None:
        marks[when] = (
            side.group.cpu_ns(),
            processes_cpu_ns(engines),
            _client_cpu_ns(),
            [o.group.cpu_ns() for o in others],
            major_faults(),
        )

    try:
        level = asyncio.run(
            run_level(side.name, side.url, side.key, c, tokens, requests, cafile=side.cafile, mark=mark)
        )
    finally:
        side.group.freeze()
    (all0, eng0, cli0, oth0, maj0), (all1, eng1, cli1, oth1, maj1) = marks["start"], marks["end"]
    per_k = 1000 / level.output_tokens / 1e6 if level.output_tokens else float("nan")  # ns → ms per 1k tokens
    return {
        **asdict(level),
        "tok_s": level.tok_s,
        "load_before": round(load, 2),
        "engine_pids": len(engines),
        "cpu_ms_per_1k": round((all1 - all0) * per_k, 1),
        "cpu_ms_per_1k_outside_engine": round(((all1 - all0) - (eng1 - eng0)) * per_k, 1),
        "client_cpu_ms_per_1k": round((cli1 - cli0) * per_k, 1),
        "frozen_sides_cpu_ms": round(sum(b - a for a, b in zip(oth0, oth1)) / 1e6, 1),
        "major_faults": maj1 - maj0,
    }


def parse_target(text: str) -> tuple[str, dict[str, str]]:
    """'stack' / 'host', optionally ':KEY=VALUE,KEY=VALUE' (.env settings of that side)."""
    kind, _, rest = text.strip().partition(":")
    if kind not in ("stack", "host"):
        raise ValueError(f"unknown side {kind!r}; expected stack or host")
    settings = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.isupper():
            raise ValueError(f"{item!r} is not KEY=VALUE")
        settings[key] = value
    return kind, settings


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def summarise(runs: list[dict[str, Any]], targets: list[str], levels: list[int]) -> tuple[str, dict[str, Any]]:
    """Markdown tables (one per appliance side) and the numbers behind them."""
    by = {(r["target"], r["concurrency"], r["round"]): r for r in runs}
    rounds = sorted({r["round"] for r in runs})
    out: dict[str, Any] = {}
    text = []
    for target in targets:
        if target == RAW:
            continue
        text += [
            f"### {target} ÷ {RAW}",
            "",
            "| c | raw tok/s | appliance tok/s | ratio | raw TTFT p50 ms | appliance TTFT p50 ms | Δ TTFT ms "
            "| CPU-ms/1k tok outside engine: raw / appliance | errors |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in levels:
            pairs = [
                (by[(RAW, c, n)], by[(target, c, n)]) for n in rounds if (RAW, c, n) in by and (target, c, n) in by
            ]
            if not pairs:
                continue
            raw_tps = [r["tok_s"] for r, _ in pairs]
            app_tps = [a["tok_s"] for _, a in pairs]
            ratio = [a["tok_s"] / r["tok_s"] for r, a in pairs if r["tok_s"]]
            delta = [a["ttft_p50_ms"] - r["ttft_p50_ms"] for r, a in pairs]
            cpu_raw = [r["cpu_ms_per_1k_outside_engine"] for r, _ in pairs]
            cpu_app = [a["cpu_ms_per_1k_outside_engine"] for _, a in pairs]
            errors = sum(r["errors"] + a["errors"] for r, a in pairs)
            out[f"{target} c={c}"] = {
                "ratio_median": statistics.median(ratio),
                "ratio_min": min(ratio),
                "ratio_max": max(ratio),
                "ttft_delta_median_ms": statistics.median(delta),
                "cpu_outside_engine_raw": statistics.median(cpu_raw),
                "cpu_outside_engine_appliance": statistics.median(cpu_app),
            }
            text.append(
                f"| {c} | {_spread(raw_tps)} | {_spread(app_tps)} | {_spread(ratio, '{:.2f}')} | "
                f"{_spread([r['ttft_p50_ms'] for r, _ in pairs])} | {_spread([a['ttft_p50_ms'] for _, a in pairs])} | "
                f"{_spread(delta, '{:+,.0f}')} | {statistics.median(cpu_raw):,.0f} / "
                f"{statistics.median(cpu_app):,.0f} | {errors} |"
            )
        text.append("")
    return "\n".join(text), out


def plot(runs: list[dict[str, Any]], targets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for target, marker in zip(targets, "osd^"):
        levels = sorted({r["concurrency"] for r in runs if r["target"] == target})
        tps = [[r["tok_s"] for r in runs if r["target"] == target and r["concurrency"] == c] for c in levels]
        ttft = [[r["ttft_p50_ms"] for r in runs if r["target"] == target and r["concurrency"] == c] for c in levels]
        for axis, values in ((left, tps), (right, ttft)):
            med = [statistics.median(v) for v in values]
            axis.errorbar(
                levels,
                med,
                yerr=[[m - min(v) for m, v in zip(med, values)], [max(v) - m for m, v in zip(med, values)]],
                marker=marker,
                capsize=4,
                label=target,
            )
    for axis, title, unit in (
        (left, "Output throughput (median, min–max)", "tokens/s"),
        (right, "Time to first token p50 (median, min–max)", "ms"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent streams")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("Appliance vs raw vLLM: tiny model on CPU, streaming, sides taking turns, idle side frozen")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        default="stack;host",
        help="appliance sides besides raw vLLM, ';'-separated: stack, host, or either with .env "
        "settings to compare, e.g. 'stack;stack:SERVE_STREAM_BATCHING_MS=100,RAY_WORKER_NICENESS=0'",
    )
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns (at least 3 for a figure to quote)")
    parser.add_argument("--tokens", type=int, default=128, help="output tokens per request")
    parser.add_argument("--requests", type=int, default=0, help="requests per level (default: max(16, 4 × c))")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where the results go")
    args = parser.parse_args(argv)
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        print(
            "bench_overhead: run it through `make bench` (a loopback-only network namespace): Ray listens on "
            "every interface",
            file=sys.stderr,
        )
        return 2
    try:
        wanted = [parse_target(t) for t in args.targets.split(";") if t.strip()]
    except ValueError as err:
        parser.error(f"--targets: {err}")
    levels = [int(c) for c in args.concurrency.split(",")]
    # a stopped benchmark still thaws, stops and removes every side it started (the context managers below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not (CACHE / "config.json").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE)], check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    started = time.time()
    with contextlib.ExitStack() as stack:
        sides: list[Side] = []
        engine = stack.enter_context(docker_session()) if any(k == "stack" for k, _ in wanted) else None
        variants = 0
        for kind, settings in [("raw", {}), *wanted]:
            label = f" [{', '.join(f'{k}={v}' for k, v in settings.items())}]" if settings else ""
            print(f"starting {kind}{label} …", flush=True)
            if kind == "raw":
                side = stack.enter_context(raw_vllm(CACHE, free_port()))
            elif kind == "host":
                side = stack.enter_context(host_side(CACHE, free_port(), settings, label))
            else:
                side = stack.enter_context(stack_side(CACHE, engine, settings, label, variants))
                variants += 1
            side.group.freeze()
            sides.append(side)
        starts = {s.name: s.group.starts() for s in sides if hasattr(s.group, "starts")}
        engines = {s.name: s.group.engine_pids() for s in sides}
        for s in sides:
            s.group.thaw()
            engines[s.name] = s.group.engine_pids()
            s.group.freeze()
        print(
            "every side is up and frozen; engine processes: " + ", ".join(f"{k}: {len(v)}" for k, v in engines.items()),
            flush=True,
        )
        for n in range(1, args.rounds + 1):
            order = sides if n % 2 else sides[::-1]
            for c in levels:
                requests = args.requests or max(16, 4 * c)
                for side in order:
                    result = measure(side, [o for o in sides if o is not side], c, args.tokens, requests)
                    result["round"] = n
                    runs.append(result)
                    print(
                        f"  round {n} {side.name:>28} c={c:<3} {result['tok_s']:7.0f} tok/s  TTFT p50 "
                        f"{result['ttft_p50_ms']:6.1f} ms  p99 {result['ttft_p99_ms']:6.0f} ms  CPU-ms/1k outside "
                        f"engine {result['cpu_ms_per_1k_outside_engine']:6.0f}  major faults {result['major_faults']:5d}  "
                        f"errors {result['errors']}"
                        f"{'  ' + result['first_error'] if result['errors'] else ''}",
                        flush=True,
                    )
        for s in sides:
            if hasattr(s.group, "starts") and s.group.starts() != starts[s.name]:
                print(
                    f"WARNING: a container of {s.name} restarted during the run: its figures are void", file=sys.stderr
                )
        notes = {s.name: s.notes for s in sides}
    names = [s.name for s in sides]
    table, numbers = summarise(runs, names, levels)
    conditions = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started),
        "rounds": args.rounds,
        "levels": levels,
        "tokens": args.tokens,
        "cores": os.cpu_count(),
        "freezing": "each side not being measured frozen: host sides through a cgroup freezer, the compose "
        "stack's containers with docker pause; the frozen sides' CPU during each run is in runs[]",
        "order": "per round and level the sides take turns; the order reverses every round",
        "appliance": "auth and audit on, PII off; the compose stack with every default of .env.example except "
        "ports, BIND_ADDRESS and the nginx per-address limits (raised so that the benchmark's single "
        "address is not throttled)",
        "sides": notes,
    }
    header = (
        f"Streaming chat, {args.tokens} output tokens, tiny model on CPU ({os.cpu_count()} cores), "
        f"{args.rounds} rounds taking turns, idle sides frozen; median (min–max) over rounds.\n"
    )
    (args.out / "bench_overhead.md").write_text(header + "\n" + table)
    (args.out / "bench_overhead.json").write_text(
        json.dumps({"conditions": conditions, "summary": numbers, "runs": runs}, indent=2)
    )
    plot(runs, names, args.out / "bench_overhead.png")
    frozen = max((r["frozen_sides_cpu_ms"] for r in runs), default=0)
    print("\n" + header + "\n" + table)
    print(f"frozen sides used at most {frozen:.0f} ms of CPU during a measurement")
    print(f"written: {args.out / 'bench_overhead.md'}, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

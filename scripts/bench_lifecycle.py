#!/usr/bin/env python3
"""Model changes, measured: deploy → ready, the smoke completion, the switch, a rollback, a second model added and
removed live, and the requests that failed meanwhile under steady streaming load to the first model. p50 / p95 over
--runs runs.

    python scripts/bench_lifecycle.py [--runs 5] [--streams 2] [--out bench-results]

One tiny model (scripts/make_tiny_model.py) served by the appliance on the host (Ray head + ``python -m appliance
serve``), the change applier attached (``serve --attach``, what the serve container's head runs). Each run changes
an engine argument (max_model_len 1024 → 512) with ``models deploy`` and then goes back with ``models rollback``,
both while ``--streams`` clients stream completions to that model; then adds a second model (``models deploy`` of a
models.yaml that lists it too) and removes it again (``models deploy`` without it), checking that it answers once
added and gets 404 once removed. Prints a table, writes JSON, Markdown and a PNG under --out. Everything listens
on 127.0.0.1; run it through `make bench` (a loopback-only namespace).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from benchlib.client import MODEL  # noqa: E402
from benchlib.targets import CACHE, host_appliance  # noqa: E402

from appliance.config import ConfigFiles, load_config  # noqa: E402
from appliance.serve.head import serving_env  # noqa: E402
from tests.helpers import free_port  # noqa: E402

TARGETS = {"ready_s": 600.0, "smoke_s": 3.0, "rollback_s": 300.0}  # the seeds' goals (p95)
ADDED = "tiny-added"  # the model each run adds live and removes again


class Load(threading.Thread):
    """``streams`` clients streaming completions to the model, one after another each; outcomes counted."""

    def __init__(self, url: str, key: str, streams: int) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.streams = url, key, streams
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed: list[str] = []

    def run(self) -> None:
        workers = [threading.Thread(target=self._client, daemon=True) for _ in range(self.streams)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def window(self) -> tuple[int, int]:
        with self.lock:
            return self.ok, len(self.failed)

    def kinds(self, since: int) -> dict[str, int]:
        """The failures after the first ``since``, counted by kind (status, stream error, transport error)."""
        with self.lock:
            return dict(collections.Counter(self.failed[since:]))

    def _client(self) -> None:
        body = {"model": MODEL, "prompt": "lifecycle bench", "max_tokens": 32, "stream": True, "ignore_eos": True}
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=120) as client:
            while not self.stop.is_set():
                outcome = "ok"
                try:
                    with client.stream("POST", "/v1/completions", json=body) as response:
                        text = "".join(response.iter_text())
                    events = [e.strip() for e in text.split("\n\n") if e.strip()]
                    if response.status_code != 200:
                        outcome = f"{response.status_code} {text[:160]}"
                    elif not events or events[-1] != "data: [DONE]" or any('"error"' in e[:20] for e in events):
                        outcome = "stream error"
                except httpx.HTTPError as err:
                    outcome = f"transport {type(err).__name__}"
                with self.lock:
                    if outcome == "ok":
                        self.ok += 1
                    else:
                        self.failed.append(outcome)
                if outcome != "ok":
                    self.stop.wait(0.5)  # as a client backs off: a refusal loop would starve the 2 cores


def _wait_attached(log: Path, applier: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while "applying queued model changes" not in log.read_text(errors="replace"):
        if applier.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve --attach did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


def _cli(work: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "appliance", *args, "--json"],
        cwd=work,
        env=env,
        text=True,
        capture_output=True,
        check=False,
        timeout=1900,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"models {args}: no JSON answer: {done.stderr[-2000:]}")
    request: dict[str, Any] = json.loads(done.stdout)["request"]
    return request


def _models_yaml(work: Path, max_model_len: int, *, added: bool = False) -> None:
    ids = (MODEL, ADDED) if added else (MODEL,)
    (work / "models.yaml").write_text(
        "models:\n"
        + "".join(
            f"  - id: {model}\n    source: {CACHE}\n    max_model_len: {max_model_len}\n"
            "    gpu_memory_utilization: 0.3\n    max_tokens_cap: 4096\n"
            for model in ids
        )
    )


def _status_of(url: str, key: str, model: str) -> int:
    """The HTTP status of one short completion to ``model`` (200 served, 404 not served)."""
    body = {"model": model, "prompt": "lifecycle bench", "max_tokens": 4}
    response = httpx.post(f"{url}/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return response.status_code


def _change(work: Path, env: dict[str, str], load: Load, *args: str, model: str = MODEL) -> dict[str, Any]:
    ok0, failed0 = load.window()
    started = time.monotonic()
    request = _cli(work, env, *args)
    total = time.monotonic() - started
    ok1, failed1 = load.window()
    [outcome] = [o for o in request["result"].get("outcomes", []) if o["model"] == model] or [{}]
    return {
        "status": request["status"],
        "total_s": round(total, 2),
        "seconds": outcome.get("seconds", {}),
        "action": outcome.get("action"),
        "mode": outcome.get("mode"),
        "requests": ok1 - ok0 + failed1 - failed0,
        "failed": failed1 - failed0,
        "failed_kinds": load.kinds(failed0),
        "reason": outcome.get("reason", request["result"].get("reason", "")),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_tiny_model.py"), str(CACHE)], check=True, capture_output=True
    )
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        work = Path(tmp)
        with host_appliance(CACHE, work, free_port()) as (url, key):
            address = (work / "ray" / "ray_current_cluster").read_text().strip()
            settings = load_config(
                ConfigFiles(env=work / ".env", secrets=work / ".secrets", models=work / "models.yaml"), gpu_count=0
            ).settings
            env = {
                **os.environ,
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(work / "ray_token"),
                "APPLIANCE_GPU_COUNT": "0",
                "RAY_USAGE_STATS_ENABLED": "0",
                **serving_env(settings),
            }
            log = (work / "applier.log").open("w")
            applier = subprocess.Popen(
                [sys.executable, "-m", "appliance", "serve", "--attach", "--ray-address", address],
                cwd=work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            # The applier must have read its configuration before models.yaml changes: a configuration read after
            # the change gives the ingress another digest, and Serve then replaces the ingress itself (with direct
            # ingress its one port stays taken by the old replica while it drains: every request is refused).
            _wait_attached(work / "applier.log", applier)
            load = Load(url, key, args.streams)
            load.start()
            try:
                for number in range(1, args.runs + 1):
                    _models_yaml(work, 512)
                    deploy = _change(work, env, load, "models", "deploy")
                    rollback = _change(work, env, load, "models", "rollback", MODEL)
                    _models_yaml(work, 1024, added=True)
                    add = _change(work, env, load, "models", "deploy", model=ADDED)
                    add["answers"] = _status_of(url, key, ADDED)
                    _models_yaml(work, 1024)
                    remove = _change(work, env, load, "models", "deploy", model=ADDED)
                    remove["answers"] = _status_of(url, key, ADDED)
                    changes = {"deploy": deploy, "rollback": rollback, "add": add, "remove": remove}
                    runs.append({"run": number, **changes})
                    print(
                        f"run {number}: "
                        + "; ".join(
                            f"{name} {r['status']} in {r['total_s']} s {r['seconds']}, failed {r['failed']}/"
                            f"{r['requests']}" + (f", {ADDED} then answers {r['answers']}" if "answers" in r else "")
                            for name, r in changes.items()
                        )
                        + "".join(f"\n  {r['reason']}" for r in changes.values() if r["status"] != "done")
                        + "".join(
                            f"\n  failed: {n} × {kind}"
                            for r in changes.values()
                            for kind, n in r["failed_kinds"].items()
                        ),
                        flush=True,
                    )
            finally:
                load.stop.set()
                load.join(180)
                applier.send_signal(signal.SIGTERM)
                applier.wait(60)
                log.close()
    return report(runs, args.streams, args.out)


def report(runs: list[dict[str, Any]], streams: int, out: Path) -> int:
    """The table (printed, and as Markdown), the runs as JSON and the PNG; 1 when any change or check failed."""
    series = {
        "deploy → ready (s)": [r["deploy"]["seconds"].get("ready", float("nan")) for r in runs],
        "smoke completion (s)": [r["deploy"]["seconds"].get("smoke", float("nan")) for r in runs],
        "switch (s)": [r["deploy"]["seconds"].get("switch", float("nan")) for r in runs],
        "deploy, request → done (s)": [r["deploy"]["total_s"] for r in runs],
        "rollback, request → done (s)": [r["rollback"]["total_s"] for r in runs],
        "add a model → ready (s)": [r["add"]["seconds"].get("ready", float("nan")) for r in runs],
        "add, request → done (s)": [r["add"]["total_s"] for r in runs],
        "remove, request → done (s)": [r["remove"]["total_s"] for r in runs],
    }
    kinds = ("deploy", "rollback", "add", "remove")
    failed = sum(r[k]["failed"] for r in runs for k in kinds)
    requests = sum(r[k]["requests"] for r in runs for k in kinds)
    lines = [f"| measure ({len(runs)} runs) | p50 | p95 | target |", "|---|---:|---:|---:|"]
    goals = {
        "deploy → ready (s)": TARGETS["ready_s"],
        "smoke completion (s)": TARGETS["smoke_s"],
        "rollback, request → done (s)": TARGETS["rollback_s"],
        "add a model → ready (s)": TARGETS["ready_s"],
    }
    for name, values in series.items():
        goal = goals.get(name)
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | {_pct(values, 0.95):.2f} | "
            f"{'≤ ' + format(goal, 'g') if goal else '-'} |"
        )
    lines.append(f"| requests failed during changes ({streams} streams) | {failed} of {requests} | | 0 |")
    answers = [(r["add"]["answers"], r["remove"]["answers"]) for r in runs]
    lines.append(
        f"| {ADDED} answered after add / after remove | "
        f"{sum(a == 200 for a, _ in answers)} × 200 / {sum(b == 404 for _, b in answers)} × 404 of {len(runs)} | | all |"
    )
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_lifecycle.json").write_text(json.dumps(runs, indent=2))
    (out / "bench_lifecycle.md").write_text("# Model lifecycle (tiny model, CPU)\n\n" + table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        names = list(series)
        ax.boxplot([series[n] for n in names], orientation="horizontal")
        ax.set_yticks(range(1, len(names) + 1), names)
        ax.set_xlabel("seconds")
        ax.set_title(f"Model lifecycle, {len(runs)} runs (failed requests: {failed} of {requests})")
        fig.tight_layout()
        fig.savefig(out / "bench_lifecycle.png", dpi=100)
    except ImportError:
        print("bench_lifecycle: matplotlib missing; no PNG (pip install -e '.[bench]')", file=sys.stderr)
    bad = any(r[k]["status"] != "done" for r in runs for k in kinds) or any(a != (200, 404) for a in answers)
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())

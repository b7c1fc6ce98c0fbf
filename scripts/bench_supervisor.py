#!/usr/bin/env python3
"""Supervisor benchmark: time from ``docker kill`` to the container running again, and doctor's wall time.

    scripts/ci/isolated.sh .venv/bin/python scripts/bench_supervisor.py [--kills 20] [--doctor-runs 5] [--out bench-results]

Starts its own dockerd (tests/integration/docker/harness.py) and the busybox compose project, runs
``python -m appliance supervise`` as a process with the default settle time (0.5 s) but no backoff and a large
budget (so 20 kills in a row are each restarted at once), kills the ``web`` container ``--kills`` times and
records kill → running (p50 / p99). Then runs ``python -m appliance doctor --json`` against the engine and the
running project ``--doctor-runs`` times (process wall time, and the run's own time without interpreter start).
Targets: kill → running <= 3 s, doctor <= 2 s. Writes bench_supervisor.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.docker.compose import ComposeCli, find_compose  # noqa: E402
from appliance.docker.engine import DockerEngine  # noqa: E402
from tests.helpers import make_config_dir, set_line  # noqa: E402
from tests.integration.docker.conftest import PROJECT_DIR, Supervisor  # noqa: E402
from tests.integration.docker.harness import docker_engine  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def kill_to_running(api: DockerEngine, project: str, kills: int) -> list[float]:
    samples = []
    for _ in range(kills):
        web = next(c for c in api.project_containers(project) if c.service == "web")
        started = time.monotonic()
        api.kill(web.id)
        while True:
            now = api.inspect(web.id)
            if now.status == "running" and now.started_at != web.started_at:
                samples.append(time.monotonic() - started)
                break
            if time.monotonic() - started > 30:
                raise SystemExit("web was not restarted within 30 s")
            time.sleep(0.01)
        time.sleep(0.3)
    return samples


def doctor_runs(workdir: Path, url: str, runs: int) -> tuple[list[float], list[float]]:
    wall, own = [], []
    for _ in range(runs):
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "doctor", "--json", "--docker-host", url],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "APPLIANCE_GPU_COUNT": "0", "HOME": str(workdir)},
        )
        wall.append(time.monotonic() - started)
        own.append(float(json.loads(result.stdout)["seconds"]))
    return wall, own


def plot(samples: list[float], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG (pip install -e '.[bench]')", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(samples) + 1), samples, marker="o")
    ax.axhline(3.0, color="red", linestyle="--", label="target 3 s")
    ax.set_xlabel("kill #")
    ax.set_ylabel("kill → running (s)")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title("watchdog: docker kill → container running again")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--doctor-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-sup-") as tmp,
        docker_engine(Path(f"/tmp/bench-dockerd-{uuid.uuid4().hex[:6]}")) as engine,
    ):
        work = Path(tmp)
        project = f"bench{uuid.uuid4().hex[:6]}"
        compose = ComposeCli(
            project,
            [PROJECT_DIR / "compose.yaml"],
            project_dir=PROJECT_DIR,
            docker_host=engine.url,
            binary=find_compose(),
        )
        compose.up("web", "sick", wait=True)
        sup = Supervisor(
            work / "sup",
            engine,
            project,
            WATCHDOG_RESTART_BUDGET="1000",
            WATCHDOG_BACKOFF_BASE_SECONDS="0",
            WATCHDOG_SETTLE_SECONDS="0.5",
            LOG_LEVEL="WARNING",
        ).start()
        try:
            with DockerEngine(engine.url) as api:
                samples = kill_to_running(api, project, args.kills)
            doctor_dir = work / "doctor"
            doctor_dir.mkdir()
            make_config_dir(doctor_dir)
            set_line(doctor_dir / ".env", "COMPOSE_PROJECT_NAME", project)
            wall, own = doctor_runs(doctor_dir, engine.url, args.doctor_runs)
        finally:
            sup.stop()
            compose.down()
    rows = [
        ("kill → running (s)", len(samples), statistics.median(samples), percentile(samples, 99), max(samples), "<= 3"),
        ("doctor, process wall (s)", len(wall), statistics.median(wall), percentile(wall, 99), max(wall), "<= 2"),
        ("doctor, checks only (s)", len(own), statistics.median(own), percentile(own, 99), max(own), "<= 2"),
    ]
    table = ["| measure | n | p50 | p99 | max | target |", "|---|---|---|---|---|---|"]
    table += [f"| {m} | {n} | {p50:.3f} | {p99:.3f} | {mx:.3f} | {t} |" for m, n, p50, p99, mx, t in rows]
    note = (
        "\nSupervisor settings: WATCHDOG_SETTLE_SECONDS=0.5 (the wait that tells a crash from `compose stop`), "
        "no backoff, budget 1000; 2-core machine, dockerd 20.10 overlay2, busybox container.\n"
    )
    text = "\n".join(table) + "\n" + note
    print(text)
    (args.out / "bench_supervisor.md").write_text(text)
    (args.out / "bench_supervisor.json").write_text(
        json.dumps({"kill_to_running_s": samples, "doctor_wall_s": wall, "doctor_checks_s": own}, indent=2)
    )
    plot(samples, args.out / "bench_supervisor.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the test tiers."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from appliance.cli import main

ROOT = Path(__file__).resolve().parent.parent


def need(condition: bool, why: str) -> None:
    """Fail under CI (a missing piece must be installed by `make test`), skip with the reason elsewhere."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config_dir(target: Path, *, with_models: bool = False) -> Path:
    """``target`` with .env and .secrets (0600) copied from the examples, and models.yaml if asked."""
    shutil.copyfile(ROOT / ".env.example", target / ".env")
    shutil.copyfile(ROOT / ".secrets.example", target / ".secrets")
    (target / ".secrets").chmod(0o600)
    if with_models:
        shutil.copyfile(ROOT / "models.example.yaml", target / "models.yaml")
    return target


def set_line(path: Path, key: str, value: str) -> None:
    """Replace ``KEY=…`` in a dotenv file (append when absent) — plain text edit, as a person would."""
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{key}="):
            lines[index] = f"{key}={value}"
            break
    else:
        lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``python -m appliance ARGS`` in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse: --help, usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stop_ray(temp_dir: Path, timeout: float = 30) -> None:
    """Stop the Ray cluster whose files live under ``temp_dir``, and only that one.

    ``ray stop --force`` would kill every Ray process on the machine (other test runs' clusters included)
    and still orphan vLLM's engine core, which runs in a child process of the Serve replica and keeps a CPU
    core and ~2 GB busy. Instead: every process whose command line names ``temp_dir`` (gcs, raylet, dashboard,
    monitors) and all their descendants (workers, replicas, engine cores) get SIGTERM, then SIGKILL.
    """
    import psutil

    marker = str(temp_dir)
    me = psutil.Process()
    spared = {me.pid} | {parent.pid for parent in me.parents()}  # the caller is never part of the cluster
    tree: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.pid not in spared and any(marker in part for part in proc.info["cmdline"] or ()):
                tree[proc.pid] = proc
                for child in proc.children(recursive=True):
                    tree[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    procs = list(tree.values())
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=10)

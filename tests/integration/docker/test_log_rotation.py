"""Log rotation while a writer never stops: every line lands in exactly one file (none lost, none twice)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from appliance.logs.rotation import rotate_file
from appliance.logs.rotation_policy import RotationPolicy
from appliance.serve.audit import AuditLog
from appliance.supervisor.jobs import RotationJob
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics

WRITER = Path(__file__).with_name("log_writer.py")


def lines_in(directory: Path, name: str) -> list[int]:
    numbers: list[int] = []
    for path in directory.iterdir():
        if path.name == name:
            text = path.read_text()
        elif path.name.startswith(name + ".") and path.name.endswith(".gz"):
            text = gzip.decompress(path.read_bytes()).decode()
        else:
            continue
        numbers += [int(line.split()[1]) for line in text.splitlines()]
    return numbers


def test_no_line_lost_or_duplicated_while_rotating_a_busy_log(tmp_path: Path) -> None:
    log, stop = tmp_path / "nginx-access.log", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, str(WRITER), str(log), str(stop)], stdout=subprocess.PIPE, text=True)
    policy = RotationPolicy(max_bytes=20_000, keep=1000)
    metrics = SupervisorMetrics()
    job = RotationJob(
        tmp_path, policy, SupervisorNotifier(metrics), {"nginx": lambda: os.kill(writer.pid, signal.SIGUSR1)}
    )
    rotations = 0
    deadline = time.monotonic() + 60
    while rotations < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
        assert job.run_once() == 0
        rotations = len(list(tmp_path.glob("nginx-access.log.*.gz")))
    stop.touch()
    written = int(writer.communicate(timeout=30)[0])
    assert rotations >= 5
    numbers = lines_in(tmp_path, log.name)
    assert len(numbers) == written  # none lost, none duplicated
    assert sorted(numbers) == list(range(1, written + 1))
    total = sum(p.stat().st_size for p in tmp_path.glob("*.gz"))
    assert total > 0 and metrics.rotated_bytes.labels(log=log.name)._value.get() >= 5 * 20_000


def test_audit_log_writer_without_a_hook_reopens_by_itself(tmp_path: Path) -> None:
    """The serving path's AuditLog recreates its file when it is gone: rotation needs no signal for it."""
    log = tmp_path / "audit.log"
    audit = AuditLog(log)
    stop = threading.Event()
    written = 0

    def writer() -> None:
        nonlocal written
        while not stop.is_set():
            written += 1
            audit.write({"request_id": str(written), "status": 200})

    thread = threading.Thread(target=writer)
    thread.start()
    job = RotationJob(tmp_path, RotationPolicy(max_bytes=50_000, keep=1000), SupervisorNotifier(SupervisorMetrics()))
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("audit.log.*.gz"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            assert job.run_once() == 0
    finally:
        stop.set()
        thread.join()
        audit.close()
    ids = []
    for path in tmp_path.iterdir():
        if path.name == "audit.log" or path.name.endswith(".gz"):
            raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            ids += [int(json.loads(line)["request_id"]) for line in raw.decode().splitlines()]
    assert len(list(tmp_path.glob("audit.log.*.gz"))) >= 3
    assert sorted(ids) == list(range(1, written + 1))


def test_retention_keeps_only_the_newest(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    policy = RotationPolicy(max_bytes=1, keep=2)
    for index in range(4):
        log.write_text(f"entry {index}\n")
        assert rotate_file(log, policy, now=1000.0 + index) is not None
        time.sleep(0.01)
    kept = sorted(tmp_path.glob("audit.log.*.gz"), key=lambda p: p.stat().st_mtime)
    assert len(kept) == 2
    assert gzip.decompress(kept[-1].read_bytes()) == b"entry 3\n"
    assert not log.exists()  # the writer recreates it on its next line

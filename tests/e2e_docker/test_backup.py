"""Disaster recovery on the real stack (#17): back up, destroy data/ and every volume, restore, make up →
the same API key works, the same certificate is served, the metrics history from before is in Prometheus.

Runs second in the tier (after the fresh-stack alert check, before the others): it leaves the stack up,
restored, so the tests after it run against the restored stack (what the restore must give back anyway).
"""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e_docker.stack import DockerStack, stack_secret
from tests.e2e_docker.test_alerts import _query

READY_TIMEOUT_S = 900


def _cli(stack: DockerStack, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": stack.engine.url, "APPLIANCE_GPU_COUNT": "0", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=stack.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _served_certificate(stack: DockerStack) -> str:
    return ssl.get_server_certificate(("127.0.0.1", stack.https_port), timeout=10)


def _key_works(stack: DockerStack) -> int:
    return stack.get("/v1/models", headers={"Authorization": f"Bearer {stack.key}"}).status_code


def test_back_up_destroy_everything_restore_and_the_stack_is_the_same(
    docker_stack: DockerStack, tmp_path: Path
) -> None:
    stack = docker_stack
    auth = (stack_secret(stack, "DASHBOARD_USER"), stack_secret(stack, "DASHBOARD_PASSWORD"))
    stack.wait_ready(timeout=READY_TIMEOUT_S)
    assert _key_works(stack) == 200
    certificate = _served_certificate(stack)
    # the admin API the backup uses is on inside the stack, refused at the edge whatever the login
    for path in (
        "/prometheus/api/v1/admin/tsdb/snapshot",
        "/prometheus/api/v1//admin/tsdb/snapshot",
        "/prometheus/api/v1/%61dmin/tsdb/snapshot",
    ):
        refused = httpx.post(stack.url + path, auth=auth, verify=ssl.create_default_context(cafile=str(stack.cafile)))
        assert refused.status_code == 403, (path, refused.status_code, refused.text[:200])
    started = time.monotonic()
    backup = _cli(stack, "backup")
    took = time.monotonic() - started
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-3000:]
    backed_up_at = time.time()
    history = _query(stack, auth, f'count_over_time(up{{job="prometheus"}}[1h] @ {backed_up_at:.3f})')
    assert history and int(history[0]["value"][1]) > 0
    (archive,) = (stack.root / "data" / "backups").glob("appliance-backup-*.tar.gz")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    print(f"\nbackup: {archive.stat().st_size / 1e6:.1f} MB in {took:.1f} s; {backup.stderr.strip()[-600:]}")

    refused = _cli(stack, "restore", str(archive))
    assert refused.returncode == 1 and "the stack is not down" in refused.stderr, refused.stderr[-2000:]

    saved = tmp_path / archive.name  # copied off the machine, as the guide says
    shutil.copy2(archive, saved)
    down = _cli(stack, "down", "--volumes")
    assert down.returncode == 0, down.stderr[-2000:]
    _destroy(stack.root / "data")
    (stack.root / ".env").unlink()
    (stack.root / ".secrets").unlink()

    started = time.monotonic()
    restore = _cli(stack, "restore", str(saved))
    took = time.monotonic() - started
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-3000:]
    print(f"restore: {took:.1f} s; {restore.stderr.strip()[-600:]}")
    started = time.monotonic()
    up = stack.make("up", timeout=3000)
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
    assert "Your admin API key" not in up.stdout, "make up made a new key: the restored .secrets was not used"
    ready = stack.wait_ready(timeout=READY_TIMEOUT_S)
    print(f"make up after the restore: ready after {time.monotonic() - started:.0f} s (health {ready:.0f} s)")

    assert _key_works(stack) == 200, "the API key from before the disaster no longer works"
    assert _served_certificate(stack) == certificate, "nginx serves another certificate than before"
    deadline = time.monotonic() + 300
    while True:  # Prometheus answers once it has loaded its blocks; the samples from before must be there
        try:
            history_after = _query(stack, auth, f'count_over_time(up{{job="prometheus"}}[1h] @ {backed_up_at:.3f})')
        except (AssertionError, httpx.HTTPError):
            history_after = []
        if history_after or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert history_after and int(history_after[0]["value"][1]) > 0, "no metrics history from before the backup"
    print(
        f"metrics: {history[0]['value'][1]} samples of up{{job=prometheus}} before the backup, "
        f"{history_after[0]['value'][1]} of them after the restore"
    )


def _destroy(data: Path) -> None:
    """Everything under data/ goes; a mount point inside it (the tier's tmpfs for data/logs) is emptied."""
    for child in data.iterdir():
        if child.is_mount():
            _destroy(child)
        elif child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()

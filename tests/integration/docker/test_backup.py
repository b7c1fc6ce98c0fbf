"""Backup and restore against a real Docker Engine: a real Prometheus (Debian's binary in a busybox container)
gives a TSDB snapshot through its admin API, a stand-in Grafana is read while paused, the registry is a real
SQLite database in WAL mode written to during the backup. Then the stack is destroyed (containers, volumes,
data/, .env, .secrets), restored, started again, and everything is back: files, owners, metrics history."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tarfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from appliance.docker.compose import ComposeCli, find_compose
from appliance.docker.engine import DockerEngine
from tests.helpers import make_config_dir, run_cli, set_line
from tests.integration.docker.conftest import wait_until
from tests.integration.docker.harness import IMAGE, Engine

PROM_BINARY = Path("/usr/bin/prometheus")
COMPOSE = """
services:
  prometheus:
    image: {image}
    user: "0:0"
    command: ["/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
              "--web.route-prefix=/prometheus/", "--web.external-url=/prometheus/", "--web.enable-admin-api",
              "--web.listen-address=127.0.0.1:9090"]
    volumes:
      - {prom}:/bin/prometheus:ro
      - /lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro
      - /lib64:/lib64:ro
      - ./prom:/etc/prometheus:ro
      - ./curl:/usr/bin/curl:ro
      - prometheus-data:/prometheus
  grafana:
    image: {image}
    # a fresh volume is handed to Grafana's user once (as Grafana's image does); a restored one keeps its owners
    command: ["sh", "-c", "f=/var/lib/grafana/grafana.db; [ -e $$f ] || { touch $$f; chown 472:472 /var/lib/grafana $$f; }; i=0; while true; do i=$$((i+1)); echo line-$$i >> $$f; sleep 0.05; done"]
    volumes:
      - grafana-data:/var/lib/grafana
volumes:
  prometheus-data:
  grafana-data:
"""
PROM_CONFIG = """
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: self
    metrics_path: /prometheus/metrics
    static_configs: [{targets: ["127.0.0.1:9090"]}]
"""
# the stack's Prometheus image has curl; busybox has wget: the same POST, the same output
CURL_SHIM = '#!/bin/sh\nfor last; do :; done\nexec wget -qO- --post-data= "$last"\n'


@pytest.fixture
def site(tmp_path: Path, engine: Engine) -> Iterator[tuple[Path, ComposeCli, str]]:
    if not PROM_BINARY.is_file():
        pytest.fail("Debian's prometheus is missing: apt-get install prometheus (make test does this)")
    project = f"b{uuid.uuid4().hex[:8]}"
    root = tmp_path / "site"
    root.mkdir()
    make_config_dir(root)
    set_line(root / ".env", "COMPOSE_PROJECT_NAME", project)
    (root / "prom").mkdir()
    (root / "prom/prometheus.yml").write_text(PROM_CONFIG)
    (root / "curl").write_text(CURL_SHIM)
    (root / "curl").chmod(0o755)
    (root / "compose.yaml").write_text(COMPOSE.replace("{image}", IMAGE).replace("{prom}", str(PROM_BINARY)))
    client = docker.DockerClient(base_url=engine.url, timeout=60)
    client.images.get(IMAGE).tag(f"{project}-prometheus", "latest")  # restore's helper image, as `make up` builds it
    compose = ComposeCli(
        project, [root / "compose.yaml"], project_dir=root, docker_host=engine.url, binary=find_compose()
    )
    try:
        yield root, compose, project
    finally:
        compose.run("down", "-v", "--remove-orphans", "-t", "1", timeout=120)
        client.images.remove(f"{project}-prometheus:latest")
        client.close()


def _site_files(root: Path) -> None:
    live = root / "data/certs/live"
    (live / ".versions/localhost/1").mkdir(parents=True)
    (live / ".versions/localhost/1/fullchain.pem").write_text("CERT")
    (live / ".versions/localhost/1/privkey.pem").write_text("KEY")
    os.symlink(".versions/localhost/1", live / "localhost")
    (root / "data/certs/certbot/config/accounts").mkdir(parents=True)
    (root / "data/certs/certbot/config/accounts/key.json").write_text('{"k": 1}')
    (root / "data/supervisor").mkdir(parents=True)
    (root / "data/supervisor/watchdog.json").write_text('{"services": {}}')


def _container(api: DockerEngine, project: str, service: str) -> str:
    return next(c.id for c in api.project_containers(project) if c.service == service and c.status == "running")


def _samples(api: DockerEngine, project: str, at: float | None = None) -> int:
    """How many samples of `up` Prometheus holds for the hour before ``at`` (default now), asked inside its
    container."""
    query = urllib.parse.quote("count_over_time(up[1h]" + (f" @ {at:.3f}" if at is not None else "") + ")")
    code, out = api.exec(
        _container(api, project, "prometheus"),
        ["wget", "-qO-", f"http://127.0.0.1:9090/prometheus/api/v1/query?query={query}"],
    )
    result = json.loads(out)["data"]["result"] if code == 0 else []
    return int(result[0]["value"][1]) if result else 0


def test_back_up_destroy_restore_and_everything_is_back(
    site: tuple[Path, ComposeCli, str],
    engine: Engine,
    docker_api: DockerEngine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, compose, project = site
    monkeypatch.chdir(root)
    _site_files(root)
    db = root / "data/registry/registry.db"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE pairs (n INTEGER)")
    stop = threading.Event()

    def writer() -> None:  # two rows per transaction, all the time: a consistent copy holds an even count
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO pairs VALUES (1)")
            conn.execute("INSERT INTO pairs VALUES (2)")
            conn.execute("COMMIT")
        conn.close()

    compose.run("up", "-d", timeout=120)
    wait_until(lambda: _samples(docker_api, project) >= 5, 60, "Prometheus scraping itself")
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        code, _, err = run_cli(capsys, "backup", "--root", str(root), "--docker-host", engine.url)
    finally:
        stop.set()
        thread.join()
    assert code == 0, err
    backed_up_at = time.time()  # every sample up to here that the restored Prometheus has came from the archive
    (archive,) = (root / "data/backups").iterdir()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[-1] == "MANIFEST.json"
    assert {
        "files/.env",
        "files/.secrets",
        "files/data/certs/live/localhost",
        "files/data/registry/registry.db",
        "files/data/certs/certbot/config/accounts/key.json",
        "files/data/supervisor/watchdog.json",
        "volumes/grafana-data/grafana.db",
    } <= set(names)
    assert not any(n.endswith("-wal") or n.endswith("-shm") for n in names)
    assert any(n.startswith("volumes/prometheus-data/") and n.endswith("/index") for n in names)  # a TSDB block
    code, out = docker_api.exec(_container(docker_api, project, "prometheus"), ["ls", "/prometheus/snapshots"])
    assert out.strip() == "", "the snapshot is removed from the volume once it is in the archive"

    code, _, err = run_cli(capsys, "restore", str(archive), "--root", str(root), "--docker-host", engine.url)
    assert code == 1 and "the stack is not down" in err and "nothing was changed" in " ".join(err.split())

    # the disaster: containers, volumes, data/ (but the archive, copied off), .env and .secrets are gone
    saved = root.parent / archive.name
    shutil.copy2(archive, saved)
    compose.run("down", "-v", "-t", "1", timeout=120)
    shutil.rmtree(root / "data")
    (root / ".env").unlink()
    (root / ".secrets").unlink()

    code, out, err = run_cli(capsys, "restore", str(saved), "--root", str(root), "--docker-host", engine.url)
    assert code == 0, err
    assert (root / ".env").read_text().count(f"COMPOSE_PROJECT_NAME={project}") == 1
    assert stat.S_IMODE((root / ".secrets").stat().st_mode) == 0o600
    assert os.readlink(root / "data/certs/live/localhost") == ".versions/localhost/1"
    assert (root / "data/certs/live/localhost/privkey.pem").read_text() == "KEY"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = conn.execute("SELECT count(*) FROM pairs").fetchone()[0]
    assert count > 0 and count % 2 == 0, f"{count} rows: a transaction was torn"
    client = docker.DockerClient(base_url=engine.url, timeout=60)
    try:
        volume = client.volumes.get(f"{project}_grafana-data")
        assert volume.attrs["Labels"]["com.docker.compose.project"] == project
    finally:
        client.close()

    compose.run("up", "-d", timeout=120)
    wait_until(lambda: _samples(docker_api, project) > 0, 60, "Prometheus answering again")
    assert _samples(docker_api, project, at=backed_up_at) >= 5, "the metrics history from before the backup"
    grafana = _container(docker_api, project, "grafana")
    code, out = docker_api.exec(
        grafana,
        [
            "sh",
            "-c",
            "stat -c '%u %g' /var/lib/grafana /var/lib/grafana/grafana.db; head -1 /var/lib/grafana/grafana.db",
        ],
    )
    assert code == 0 and out.split("\n")[:3] == ["472 472", "472 472", "line-1"], out

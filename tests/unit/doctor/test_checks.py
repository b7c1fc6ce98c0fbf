"""Each doctor check, with the lowest I/O call patched (disk usage, nvidia-smi, socket bind, DNS, Docker)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.docker.errors import DockerUnreachableError
from appliance.docker.model import ContainerState
from appliance.doctor import probes
from appliance.doctor.checks import (
    AcmeEmail,
    ClockSkew,
    ConfigValid,
    DiskSpace,
    DockerEngineCheck,
    DomainDns,
    GpuCount,
    GpuDriver,
    GpuMemory,
    GpuRuntime,
    HealthReady,
    Ports,
    PrometheusTargets,
    RestartCounts,
    SecretsFile,
    ServicesHealthy,
    UnsafeFlags,
)
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Level
from tests.unit.doctor.conftest import ONE_GPU, TWO_GPUS
from tests.unit.doctor.test_gpu_fit import LLAMA2_7B, LLAMA2_7B_PARAMS, llama_tensors, write_safetensors

Usage = namedtuple("Usage", "total used free")
GIB = 1024**3


def levels(findings) -> list[Level]:
    return [f.level for f in findings]


def fake_docker(
    monkeypatch: pytest.MonkeyPatch,
    *,
    version: str = "24.0.7",
    runtimes=("runc",),
    skew_s: float = 0,
    containers: list[ContainerState] | None = None,
    down: bool = False,
) -> None:
    def snapshot(host):
        if down:
            raise DockerUnreachableError("no Docker Engine answers at unix:///var/run/docker.sock")
        now = datetime.now(tz=UTC) + timedelta(seconds=skew_s)
        return {
            "version": {"Version": version, "ApiVersion": "1.43"},
            "info": {"Runtimes": {r: {} for r in runtimes}, "SystemTime": now.isoformat().replace("+00:00", "Z")},
        }

    class Engine:
        def __enter__(self):
            if down:
                raise DockerUnreachableError("down")
            return self

        def __exit__(self, *exc):
            return None

        def project_containers(self, project):
            return containers or []

    monkeypatch.setattr(probes, "docker_snapshot", snapshot)
    monkeypatch.setattr(probes, "open_engine", lambda host, timeout=2.0: Engine())


def container(
    service: str,
    status: str = "running",
    health: str | None = "healthy",
    restarts: int = 0,
    ports: tuple[int, ...] = (),
) -> ContainerState:
    return ContainerState(
        id=service * 4,
        name=f"appliance-{service}-1",
        service=service,
        status=status,
        health=health,
        started_at=None,
        finished_at=None,
        exit_code=0,
        start_period_s=0,
        restart_count=restarts,
        published_ports=ports,
    )


# --- config, secrets, flags ---------------------------------------------------------------------------
def test_config_valid_and_invalid(make_ctx) -> None:
    assert Level.ERROR not in levels(ConfigValid().run(make_ctx()))
    bad = make_ctx(HTTP_PORT="99999", LOG_LEVEL="LOUD")
    findings = ConfigValid().run(bad)
    assert levels(findings).count(Level.ERROR) == 2
    assert any("HTTP_PORT" in f.found for f in findings)


def test_secrets_mode(make_ctx) -> None:
    ctx = make_ctx()
    assert levels(SecretsFile().run(ctx)) == [Level.OK]
    os.chmod(ctx.files.secrets, 0o644)
    finding = SecretsFile().run(ctx)[0]
    assert finding.level is Level.ERROR and finding.found == "mode 0644" and "chmod 600" in finding.fix


def test_unsafe_flags(make_ctx) -> None:
    assert levels(UnsafeFlags().run(make_ctx())) == [Level.OK]
    ctx = make_ctx(AUTH_ENABLED="false", PII_ENABLED="true", PII_FAIL_OPEN="true")
    findings = UnsafeFlags().run(ctx)
    assert [f.title for f in findings] == ["authentication disabled", "PII fail-open"]
    # one rule (appliance.config.rules), one message: the config check does not show them again
    rule_messages = {i.message for i in ctx.config.warnings if i.key in ("AUTH_ENABLED", "PII_FAIL_OPEN")}
    assert len(rule_messages) == 2 and all(any(m in f.found for f in findings) for m in rule_messages)
    assert not any(m in f.found for f in ConfigValid().run(ctx) for m in rule_messages)


def test_acme_email(make_ctx) -> None:
    assert not AcmeEmail().applies(make_ctx())
    ctx = make_ctx(TLS_MODE="acme", DOMAIN="llm.example.com", ACME_EMAIL="ops@example.com")
    assert AcmeEmail().applies(ctx) and levels(AcmeEmail().run(ctx)) == [Level.OK]


# --- Docker ---------------------------------------------------------------------------------------------
def test_docker_engine_versions(make_ctx, monkeypatch) -> None:
    fake_docker(monkeypatch, version="24.0.7")
    assert levels(DockerEngineCheck().run(make_ctx())) == [Level.OK]
    fake_docker(monkeypatch, version="19.03.1")
    assert levels(DockerEngineCheck().run(make_ctx())) == [Level.ERROR]
    fake_docker(monkeypatch, down=True)
    finding = DockerEngineCheck().run(make_ctx())[0]
    assert finding.level is Level.ERROR and "systemctl start docker" in finding.fix


def test_clock_skew(make_ctx, monkeypatch) -> None:
    fake_docker(monkeypatch, skew_s=0.5)
    assert levels(ClockSkew().run(make_ctx())) == [Level.OK]
    fake_docker(monkeypatch, skew_s=120)
    assert levels(ClockSkew().run(make_ctx())) == [Level.WARNING]
    fake_docker(monkeypatch, down=True)
    assert levels(ClockSkew().run(make_ctx())) == [Level.INFO]


# --- GPU ------------------------------------------------------------------------------------------------
def test_gpu_checks_only_in_gpu_mode(make_ctx) -> None:
    ctx = make_ctx(ACCELERATOR="cpu")
    assert not any(c.applies(ctx) for c in (GpuDriver(), GpuRuntime(), GpuCount(), GpuMemory()))


def test_gpu_driver(make_ctx, nvidia_smi) -> None:
    ctx = make_ctx(gpu_count=1, ACCELERATOR="gpu")
    nvidia_smi(ONE_GPU)
    assert levels(GpuDriver().run(ctx)) == [Level.OK]
    nvidia_smi("0, Tesla T4, 15360, 15000, 470.82.01\n")
    assert GpuDriver().run(ctx)[0].found == "470.82.01"
    nvidia_smi(None)
    assert levels(GpuDriver().run(ctx)) == [Level.ERROR]


def test_gpu_runtime(make_ctx, monkeypatch) -> None:
    ctx = make_ctx(gpu_count=1, ACCELERATOR="gpu")
    fake_docker(monkeypatch, runtimes=("runc", "nvidia"))
    assert levels(GpuRuntime().run(ctx)) == [Level.OK]
    fake_docker(monkeypatch, runtimes=("runc",))
    finding = GpuRuntime().run(ctx)[0]
    assert finding.level is Level.ERROR and "nvidia-ctk" in finding.fix


def test_gpu_count(make_ctx, nvidia_smi) -> None:
    ctx = make_ctx(gpu_count=2, ACCELERATOR="gpu", MODEL_TENSOR_PARALLEL_SIZE="2")
    nvidia_smi(TWO_GPUS)
    assert levels(GpuCount().run(ctx)) == [Level.OK]
    nvidia_smi(ONE_GPU)
    finding = GpuCount().run(ctx)[0]
    assert finding.level is Level.ERROR and finding.found == "1 GPU(s)"


def test_gpu_count_counts_the_standby_replicas(make_ctx, nvidia_smi) -> None:
    standby = "models:\n  - id: m\n    source: org/m\n    replicas_standby: 1\n"
    ctx = make_ctx(gpu_count=2, ACCELERATOR="gpu", models_yaml=standby)
    nvidia_smi(TWO_GPUS)
    assert levels(GpuCount().run(ctx)) == [Level.OK]
    nvidia_smi(ONE_GPU)
    finding = GpuCount().run(ctx)[0]
    assert finding.level is Level.ERROR and "2 replicas" in finding.expected and "replicas_standby" in finding.fix


def test_gpu_memory_fit_says_what_to_lower(make_ctx, nvidia_smi, tmp_path: Path) -> None:
    model_dir = tmp_path / "llama-2-7b"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(LLAMA2_7B))
    write_safetensors(model_dir / "model.safetensors", llama_tensors(LLAMA2_7B))
    nvidia_smi(ONE_GPU)
    fits = make_ctx(gpu_count=1, ACCELERATOR="gpu", MODEL_SOURCE=str(model_dir), MODEL_MAX_MODEL_LEN="4096")
    assert levels(GpuMemory().run(fits)) == [Level.OK]
    too_long = make_ctx(gpu_count=1, ACCELERATOR="gpu", MODEL_SOURCE=str(model_dir), MODEL_MAX_MODEL_LEN="32768")
    finding = GpuMemory().run(too_long)[0]
    assert finding.level is Level.ERROR and "lower max_model_len" in finding.fix and "to 15438" in finding.fix
    absent = make_ctx(gpu_count=1, ACCELERATOR="gpu", MODEL_SOURCE="org/not-downloaded")
    assert levels(GpuMemory().run(absent)) == [Level.INFO]
    assert LLAMA2_7B_PARAMS  # the weights counted are those of the known model


# --- host -----------------------------------------------------------------------------------------------
def test_disk_space(make_ctx, monkeypatch) -> None:
    ctx = make_ctx()
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(500 * GIB, 100 * GIB, 400 * GIB))
    assert levels(DiskSpace().run(ctx)) == [Level.OK, Level.OK]
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(500 * GIB, 490 * GIB, 10 * GIB))
    assert levels(DiskSpace().run(ctx)) == [Level.ERROR, Level.OK]  # model cache wants 50, logs 2
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(500 * GIB, 499 * GIB, GIB))
    assert levels(DiskSpace().run(ctx)) == [Level.ERROR, Level.WARNING]
    local = make_ctx(MODEL_SOURCE="/models/tiny")  # nothing is downloaded: the hub cache's disk does not matter
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(500 * GIB, 490 * GIB, 10 * GIB))
    findings = DiskSpace().run(local)
    assert levels(findings) == [Level.OK, Level.OK] and findings[0].found == "every model is a local path"


def test_ports_free_busy_or_ours(make_ctx, monkeypatch) -> None:
    ctx = make_ctx()
    binds: list[tuple] = []

    def bind(self, address):
        binds.append(address)
        if address[1] == 443:
            raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(socket.socket, "bind", bind)
    fake_docker(monkeypatch, containers=[])
    findings = Ports().run(ctx)
    assert binds == [("0.0.0.0", 80), ("0.0.0.0", 443)]
    assert levels(findings) == [Level.OK, Level.ERROR] and "ss -ltnp" in findings[1].fix
    fake_docker(monkeypatch, containers=[container("nginx", ports=(80, 443))])
    assert levels(Ports().run(ctx)) == [Level.OK, Level.OK]


def test_domain_dns(make_ctx, monkeypatch) -> None:
    ctx = make_ctx(DOMAIN="llm.example.com")
    monkeypatch.setattr(probes, "local_addresses", lambda: {"127.0.0.1", "203.0.113.7"})
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(0, 0, 0, "", ("203.0.113.7", 0))])
    assert levels(DomainDns().run(ctx)) == [Level.OK]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(0, 0, 0, "", ("198.51.100.1", 0))])
    assert levels(DomainDns().run(ctx)) == [Level.WARNING]

    def offline(*a, **k):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    assert levels(DomainDns().run(ctx)) == [Level.WARNING]


# --- running stack --------------------------------------------------------------------------------------
def test_services_healthy(make_ctx, monkeypatch) -> None:
    fake_docker(
        monkeypatch,
        containers=[
            container("serve", health="starting"),
            container("nginx"),
            container("prometheus", status="exited", health=None),
        ],
    )
    findings = ServicesHealthy().run(make_ctx())
    by_title = {f.title: f.level for f in findings}
    assert by_title == {"service nginx": Level.OK, "service prometheus": Level.ERROR, "service serve": Level.INFO}
    fake_docker(monkeypatch, containers=[])
    assert levels(ServicesHealthy().run(make_ctx())) == [Level.INFO]


def test_a_service_stopped_by_hand_is_flagged_with_how_to_start_it(make_ctx, monkeypatch) -> None:
    stopped = ContainerState(
        id="s" * 12,
        name="appliance-supervisor-1",
        service="supervisor",
        status="exited",
        health=None,
        started_at=None,
        finished_at=None,
        exit_code=137,
        start_period_s=0,
        restart_count=0,
        labels={"appliance.watchdog": "false"},
    )
    fake_docker(monkeypatch, containers=[stopped])
    (finding,) = ServicesHealthy().run(make_ctx())
    assert finding.level is Level.ERROR
    assert "stopped by hand" in finding.found and "no watchdog watches it" in finding.found
    assert finding.fix.startswith("docker compose -p appliance start supervisor")


def test_restart_counts(make_ctx, monkeypatch, tmp_path: Path) -> None:
    state = tmp_path / "watchdog.json"
    state.write_text(
        json.dumps(
            {
                "services": {
                    "serve": {"restarts": [1, 2, 3], "gave_up": False},
                    "nginx": {"restarts": [], "gave_up": True},
                }
            }
        )
    )
    ctx = make_ctx(SUPERVISOR_STATE_FILE=str(state))
    fake_docker(monkeypatch, containers=[container("serve", restarts=2), container("nginx"), container("grafana")])
    findings = RestartCounts().run(ctx)
    assert {f.title: f.level for f in findings} == {"restarts: nginx": Level.ERROR, "restarts: serve": Level.WARNING}


def test_health_ready(make_ctx, monkeypatch) -> None:
    monkeypatch.setattr(probes, "http_get_json", lambda url, timeout, **_: (200, {"status": "ready"}))
    assert levels(HealthReady().run(make_ctx())) == [Level.OK]
    monkeypatch.setattr(probes, "http_get_json", lambda url, timeout, **_: (503, {"status": "loading"}))
    assert levels(HealthReady().run(make_ctx())) == [Level.ERROR]

    def refused(url, timeout, **_):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(probes, "http_get_json", refused)
    assert levels(HealthReady().run(make_ctx())) == [Level.ERROR]


def test_prometheus_targets(make_ctx, monkeypatch) -> None:
    up = {"labels": {"job": "serve"}, "health": "up", "scrapeUrl": "http://serve:8080/metrics"}
    down = {
        "labels": {"job": "supervisor"},
        "health": "down",
        "scrapeUrl": "http://supervisor:9464/metrics",
        "lastError": "connection refused",
    }
    monkeypatch.setattr(probes, "http_get_json", lambda url, timeout, **_: (200, {"data": {"activeTargets": [up]}}))
    assert levels(PrometheusTargets().run(make_ctx())) == [Level.OK]
    monkeypatch.setattr(
        probes, "http_get_json", lambda url, timeout, **_: (200, {"data": {"activeTargets": [up, down]}})
    )
    finding = PrometheusTargets().run(make_ctx())[0]
    assert finding.level is Level.ERROR and "supervisor" in finding.found and "connection refused" in finding.found


def test_datadog_agent_on_only_with_a_key(make_ctx) -> None:
    from appliance.doctor.checks.datadog import DatadogAgent

    off = DatadogAgent().run(make_ctx())
    assert levels(off) == [Level.INFO] and "off" in off[0].found
    ctx = make_ctx(
        secrets={"DATADOG_API_KEY": "0123456789abcdef0123456789abcdef"},
        DATADOG_SITE="datadoghq.eu",
        DATADOG_TAGS="team:ml",
    )
    on = DatadogAgent().run(ctx)
    assert levels(on) == [Level.OK] and "datadoghq.eu" in on[0].found and "team:ml" in on[0].found
    assert "0123456789abcdef" not in on[0].found, "the key itself is never shown"


def test_stack_probes_go_through_nginx_with_the_appliance_tls_and_the_dashboard_login(make_ctx, monkeypatch) -> None:
    """Only nginx publishes ports: the host-side doctor asks /health/ready and /prometheus through it (#17)."""
    seen = []

    def answer(url, timeout, context=None, headers=()):
        seen.append((url, context, dict(headers)))
        return 200, {"status": "ready", "data": {"activeTargets": []}}

    monkeypatch.setattr(probes, "http_get_json", answer)
    ctx = make_ctx(secrets={"DASHBOARD_PASSWORD": "pw-of-the-dashboards"}, HTTPS_PORT="8443")
    assert levels(HealthReady().run(ctx)) == [Level.OK]
    assert levels(PrometheusTargets().run(ctx)) == [Level.OK]
    (health_url, health_tls, _), (prom_url, prom_tls, prom_headers) = seen
    assert health_url == "https://127.0.0.1:8443/health/ready" and health_tls is not None
    assert prom_url == "https://127.0.0.1:8443/prometheus/api/v1/targets?state=active" and prom_tls is not None
    assert prom_headers["Authorization"].startswith("Basic ")
    off = make_ctx(DASHBOARDS_ENABLED="false")
    assert levels(PrometheusTargets().run(off)) == [Level.INFO]
    seen.clear()
    given = make_ctx()
    given.health_url = "http://10.0.0.5:8000/health/ready"
    HealthReady().run(given)
    assert seen[0][0] == "http://10.0.0.5:8000/health/ready"


def test_an_exit_under_restart_no_is_not_called_a_manual_stop(make_ctx, monkeypatch) -> None:
    """Docker restarts a crash only under always / unless-stopped: elsewhere an exit says nothing about hands."""
    crashed = ContainerState(
        id="c" * 12,
        name="appliance-job-1",
        service="job",
        status="exited",
        health=None,
        started_at=None,
        finished_at=None,
        exit_code=3,
        start_period_s=0,
        restart_count=0,
        restart_policy="no",
    )
    fake_docker(monkeypatch, containers=[crashed])
    (finding,) = ServicesHealthy().run(make_ctx())
    assert finding.level is Level.ERROR and finding.found == "exited" and "logs job" in finding.fix


# --- cluster-fit ------------------------------------------------------------------------------------------
CLUSTER = {"RAY_CLUSTER_INTERFACE": "eth1", "RAY_CLUSTER_SUBNET": "10.50.0.0/24", "RAY_CLUSTER_BIND": "10.50.0.10"}


def test_cluster_fit_applies_with_workers_only_and_replaces_gpu_count(make_ctx) -> None:
    from appliance.doctor.checks.cluster_fit import ClusterFit

    single = make_ctx(gpu_count=1, ACCELERATOR="gpu")
    assert not ClusterFit().applies(single) and GpuCount().applies(single)
    cluster = make_ctx(gpu_count=1, ACCELERATOR="gpu", RAY_WORKER_NODES="1", **CLUSTER)
    assert ClusterFit().applies(cluster) and not GpuCount().applies(cluster)


def test_cluster_fit_without_a_running_serve_is_info(make_ctx, monkeypatch) -> None:
    from appliance.doctor.checks.cluster_fit import ClusterFit

    ctx = make_ctx(RAY_WORKER_NODES="1", **CLUSTER)
    fake_docker(monkeypatch, containers=[container("serve", status="exited", health=None)])
    (finding,) = ClusterFit().run(ctx)
    assert finding.level is Level.INFO and "serve is not running" in finding.found


def test_cluster_fit_estimates_a_model_pinned_to_a_worker_from_the_gpu_memory_it_reported(
    make_ctx, monkeypatch, nvidia_smi, tmp_path: Path
) -> None:
    import appliance.doctor.checks.cluster_fit as module

    model_dir = tmp_path / "llama-2-7b"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(LLAMA2_7B))
    write_safetensors(model_dir / "model.safetensors", llama_tensors(LLAMA2_7B))

    def ctx_for(max_model_len: int) -> DoctorContext:
        pinned = f"models:\n  - id: big\n    source: {model_dir}\n    max_model_len: {max_model_len}\n    nodes: [w1]\n"
        return make_ctx(gpu_count=1, ACCELERATOR="gpu", RAY_WORKER_NODES="1", models_yaml=pinned, **CLUSTER)

    fake_docker(monkeypatch, containers=[container("serve")])
    head = {"node": "head", "state": "alive", "cpus": 8, "gpus": 1, "gpu_memory_mib": None, "runs": []}
    w1 = {"node": "w1", "state": "alive", "cpus": 8, "gpus": 1, "gpu_memory_mib": 24564, "runs": []}
    monkeypatch.setattr(module, "ask_serve", lambda host, containers, timeout: [head, w1])
    memory = [f for f in module.ClusterFit().run(ctx_for(4096)) if f.title == "GPU memory fit: big"]
    assert [f.level for f in memory] == [Level.OK] and "usable on 1 GPU(s)" in memory[0].expected
    (too_long,) = [f for f in module.ClusterFit().run(ctx_for(32768)) if f.title == "GPU memory fit: big"]
    assert too_long.level is Level.ERROR and "lower max_model_len of big to 15438" in too_long.fix  # as on one box
    monkeypatch.setattr(module, "ask_serve", lambda host, containers, timeout: [head, {**w1, "gpu_memory_mib": None}])
    (unknown,) = [f for f in module.ClusterFit().run(ctx_for(4096)) if f.title == "GPU memory fit: big"]
    assert unknown.level is Level.INFO and "not known for: w1" in unknown.found and "join" in unknown.fix
    # gpu-memory, on the head, leaves it to cluster-fit (this machine's GPUs are not the ones it runs on)
    nvidia_smi(ONE_GPU)
    (local,) = GpuMemory().run(ctx_for(4096))
    assert local.level is Level.INFO and "cluster-fit" in local.fix


def test_cluster_fit_reports_per_model_from_rays_nodes(make_ctx, monkeypatch) -> None:
    import appliance.doctor.checks.cluster_fit as module

    ctx = make_ctx(RAY_WORKER_NODES="1", **CLUSTER)
    fake_docker(monkeypatch, containers=[container("serve")])
    nodes = [{"node": "head", "address": "10.50.0.10", "state": "alive", "cpus": 8, "gpus": 0, "runs": []}]
    monkeypatch.setattr(module, "ask_serve", lambda host, containers, timeout: nodes)
    findings = module.ClusterFit().run(ctx)
    assert [(f.title, f.level) for f in findings] == [
        ("worker nodes", Level.INFO),
        (f"placement: {ctx.config.models[0].id}", Level.OK),
    ]

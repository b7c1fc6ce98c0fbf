"""Least privilege for the serve container and Ray, on the running stack (issue #15, "Containers and Ray"):
serve runs as a non-root user and sees no credential but its own files; Ray's GCS is off the network the
other services share and refuses a client without its token; HF_TOKEN is a file, never an environment value;
Ray's metrics still reach Prometheus with the Ray dashboard off.

Runs on the tier's one stack (before test_stack.py, which ends with make down)."""

from __future__ import annotations

import json
import time
import urllib.parse

import docker
import pytest

from tests.e2e_docker.stack import HF_TOKEN_CANARY, DockerStack

pytestmark = pytest.mark.security

GCS = 6379


def _container(stack: DockerStack, service: str):
    client = docker.DockerClient(base_url=stack.engine.url, timeout=60)
    matches = client.containers.list(
        filters={"label": ["com.docker.compose.project=appliance-e2e", f"com.docker.compose.service={service}"]}
    )
    assert matches, f"no running {service} container"
    return matches[0]


def _sh(container, script: str, user: str = "") -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", script], user=user)
    return result.exit_code, result.output.decode(errors="replace")


def test_serve_runs_as_a_non_root_user(docker_stack: DockerStack) -> None:
    serve = _container(docker_stack, "serve")
    assert str(serve.attrs["Config"]["User"]).split(":")[0] not in ("", "0", "root")
    code, out = _sh(serve, "ps -eo uid=,args=")
    assert code == 0, out
    processes = [line.split(None, 1) for line in out.strip().splitlines()]
    assert any("raylet" in args for _uid, args in processes), out[-2000:]
    assert {uid for uid, _args in processes} == {"10001"}, f"every process of serve runs as uid 10001:\n{out[-3000:]}"


def test_serve_cannot_read_the_project_secrets(docker_stack: DockerStack) -> None:
    serve = _container(docker_stack, "serve")
    root = docker_stack.root
    secrets = dict(
        line.split("=", 1)
        for line in (root / ".secrets").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    passwords = [secrets["GRAFANA_ADMIN_PASSWORD"], secrets["DASHBOARD_PASSWORD"]]
    assert all(passwords), "make up generated them"
    code, out = _sh(serve, "ls -A /appliance; ls -A /run/appliance")
    assert ".secrets" not in out.split() and ".env" not in out.split(), out
    assert sorted(out.split()) == sorted(
        ["data", "models", "api_keys", "hf_token", "models.yaml", "ray_auth_token", "settings.env"]
    )
    # no private key, no other service's credential where data could be (not the image's own /usr, /opt)
    code, out = _sh(
        serve,
        "find /appliance /run /home /tmp /var /etc /srv /mnt /root \\( -name 'privkey*' -o -name "
        "'*.key' -o -name .secrets -o -name grafana_admin_password -o -name 'datadog*' -o -name "
        "htpasswd \\) -print 2>/dev/null",
    )
    assert out.strip() == "", out
    for password in passwords:
        code, out = _sh(
            serve, f"grep -rlF -D skip -- '{password}' /appliance /run/appliance /etc /home /tmp 2>/dev/null"
        )
        assert out.strip() == "", f"a password of .secrets is readable in serve: {out}"
    # the API key file holds hashes only, and the ingress answers with it
    code, out = _sh(serve, "cat /run/appliance/api_keys")
    assert code == 0 and "API_KEY_ADMIN=sha256:" in out and docker_stack.key not in out


def test_hf_token_is_a_file_never_in_the_environment(docker_stack: DockerStack) -> None:
    serve = _container(docker_stack, "serve")
    env = serve.attrs["Config"]["Env"]
    assert not any(HF_TOKEN_CANARY in item or item.startswith("HF_TOKEN=") for item in env), env
    assert "HF_TOKEN_PATH=/run/appliance/hf_token" in env
    # every process in serve: Ray's workers, the engine replicas (their runtime env), the ingress
    code, out = _sh(
        serve,
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null; done | "
        f"grep -c -e '{HF_TOKEN_CANARY}' -e '^HF_TOKEN=' ; ls /proc | grep -c '^[0-9]'",
    )
    hits, processes = out.split()
    assert hits == "0" and int(processes) > 5, out
    code, out = _sh(serve, "python -c 'import huggingface_hub as h; print(h.get_token())'")
    assert out.strip() == HF_TOKEN_CANARY, "huggingface_hub finds the token through HF_TOKEN_PATH"


def test_ray_gcs_is_off_the_shared_network_and_wants_its_token(docker_stack: DockerStack) -> None:
    serve = _container(docker_stack, "serve")
    networks = serve.attrs["NetworkSettings"]["Networks"]
    # serving (nginx and Prometheus only), and in cluster mode (the tier's stack is a cluster head) the private
    # macvlan network of the Ray nodes, where serve has its own address (compose/cluster.yml)
    by_kind = {name.split("_")[-1]: settings for name, settings in networks.items()}
    assert set(by_kind) in ({"serving"}, {"serving", "cluster"}), list(networks)
    serve_ip = by_kind["serving"]["IPAddress"]
    gcs_host = by_kind["cluster"]["IPAddress"] if "cluster" in by_kind else "127.0.0.1"
    # a container on the backend network only (the exporters', Grafana's and the Datadog agent's): no name, no route
    exporter = _container(docker_stack, "node-exporter")
    assert "serving" not in " ".join(exporter.attrs["NetworkSettings"]["Networks"])
    code, out = _sh(exporter, f"curl -sS --max-time 5 -o /dev/null http://serve:{GCS}/")
    assert code in (6, 28) and "resolv" in out.lower(), f"'serve' resolves from the backend network: {code} {out}"
    # By address: Docker's isolation rules between networks need iptables, which the test's dockerd runs without,
    # so here the host routes between the bridges and the GCS answers at its address; then only the token holds
    # (checked below). With iptables (production) this connection is dropped.
    code, out = _sh(exporter, f"curl -sS --connect-timeout 5 -o /dev/null http://{serve_ip}:{GCS}/")
    print(f"GCS at {serve_ip}:{GCS} from a backend-only container: curl exit {code} ({out.strip()[:80]})")
    # where it is reachable (inside serve; nginx and Prometheus share its network) it refuses a client without
    # the token, and answers one with it
    plain = "env -u RAY_AUTH_TOKEN_PATH -u RAY_AUTH_TOKEN HOME=/tmp/no-token"
    for client in (
        f"{plain} RAY_AUTH_MODE=disabled",
        f"{plain} RAY_AUTH_MODE=token",
        "echo wrong-token > /tmp/wrong; RAY_AUTH_TOKEN_PATH=/tmp/wrong",
    ):
        code, out = _sh(serve, f"{client} timeout 60 ray status --address={gcs_host}:{GCS}")
        assert code != 0, f"ray status without the token succeeded ({client}):\n{out[-1500:]}"
    code, out = _sh(serve, f"timeout 60 ray status --address={gcs_host}:{GCS}")
    assert code == 0, out[-2000:]
    code, out = _sh(serve, "stat -c '%a %U' /run/appliance/ray_auth_token")
    assert out.split()[0] == "640", out


def test_ray_metrics_reach_prometheus_with_the_dashboard_off(docker_stack: DockerStack) -> None:
    serve = _container(docker_stack, "serve")
    # Ray keeps a headless dashboard process (its metrics and event modules); the web UI and job API must not listen
    code, out = _sh(serve, "python -c \"import socket; socket.create_connection(('127.0.0.1', 8265), 3)\"")
    assert code != 0 and "refused" in out.lower(), (
        f"the Ray dashboard listens though RAY_DASHBOARD_ENABLED=false: {out}"
    )
    prometheus = _container(docker_stack, "prometheus")
    query = urllib.parse.quote('count({job="ray", __name__=~"ray_.+"}) and on() up{job="ray"} == 1')
    deadline = time.monotonic() + 120
    while True:
        code, out = _sh(prometheus, f"curl -sS 'http://127.0.0.1:9090/prometheus/api/v1/query?query={query}'")
        result = json.loads(out)["data"]["result"] if code == 0 and out.startswith("{") else []
        if result and float(result[0]["value"][1]) > 0:
            break
        assert time.monotonic() < deadline, f"no Ray series scraped by Prometheus: {out[-1000:]}"
        time.sleep(5)

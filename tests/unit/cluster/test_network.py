"""The cluster network's settings (all or none, an interface, an IPv4 subnet, this node's own address), what
`make up` gives compose for it, and what changes on the head when it is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cluster.network import cluster_network, problems
from appliance.cluster.placement import HEAD_RESOURCE, HEAD_SLIVER, head_only
from appliance.config import ConfigFiles, load_config
from appliance.config.settings import Settings
from appliance.errors import ConfigError
from appliance.serve.builder import ingress_options
from appliance.serve.head import gcs_address, ray_start_argv
from appliance.serve.pii.engine import options_from_settings
from appliance.serve.pii.service import deployment_options
from appliance.stack.plan import CLUSTER_FILE, cluster_env, plan_stack, without_cluster
from tests.helpers import make_config_dir, set_line

CLUSTER = {"ray_cluster_interface": "eth1", "ray_cluster_subnet": "10.50.0.0/24", "ray_cluster_bind": "10.50.0.10"}


def _settings(**values: str) -> Settings:
    return Settings(**values)


def test_single_node_by_default() -> None:
    settings = _settings()
    assert problems(settings) == [] and cluster_network(settings) is None
    argv = ray_start_argv(settings, cores=4)
    assert not any(a.startswith("--node-ip-address") for a in argv)
    assert f'--resources={{"{HEAD_RESOURCE}": 1000}}' in argv
    assert gcs_address(settings) == "127.0.0.1:6379"
    assert "resources" not in ingress_options(settings)["ray_actor_options"]


def test_a_cluster_node_advertises_its_own_address_and_keeps_the_ingress_and_pii_on_the_head() -> None:
    settings = _settings(**CLUSTER)
    assert problems(settings) == []
    network = cluster_network(settings)
    assert network is not None and (network.interface, network.subnet, network.bind) == (
        "eth1",
        "10.50.0.0/24",
        "10.50.0.10",
    )
    assert "--node-ip-address=10.50.0.10" in ray_start_argv(settings, cores=4)
    assert gcs_address(settings) == "10.50.0.10:6379"
    assert ingress_options(settings)["ray_actor_options"]["resources"] == {HEAD_RESOURCE: HEAD_SLIVER}
    pii = deployment_options(options_from_settings(_settings(**CLUSTER, pii_enabled="true")))
    assert pii["ray_actor_options"] == {"num_cpus": 1, "resources": {HEAD_RESOURCE: HEAD_SLIVER}}
    assert head_only({"num_cpus": 1}, False) == {"num_cpus": 1}


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"ray_cluster_interface": "eth1"}, "RAY_CLUSTER_SUBNET", "expected a value"),
        ({**CLUSTER, "ray_cluster_interface": "eth 1"}, "RAY_CLUSTER_INTERFACE", "interface name"),
        ({**CLUSTER, "ray_cluster_interface": "a-very-long-interface"}, "RAY_CLUSTER_INTERFACE", "1-15"),
        ({**CLUSTER, "ray_cluster_subnet": "10.50.0.1/24"}, "RAY_CLUSTER_SUBNET", "CIDR"),
        ({**CLUSTER, "ray_cluster_subnet": "fd00::/64", "ray_cluster_bind": "fd00::5"}, "RAY_CLUSTER_SUBNET", "IPv4"),
        ({**CLUSTER, "ray_cluster_bind": "eth1"}, "RAY_CLUSTER_BIND", "an IP address"),
        ({**CLUSTER, "ray_cluster_bind": "0.0.0.0"}, "RAY_CLUSTER_BIND", "never a wildcard"),
        ({**CLUSTER, "ray_cluster_bind": "10.60.0.10"}, "RAY_CLUSTER_BIND", "in RAY_CLUSTER_SUBNET 10.50.0.0/24"),
        ({**CLUSTER, "ray_cluster_bind": "10.50.0.255"}, "RAY_CLUSTER_BIND", "host address"),
        ({**CLUSTER, "ray_cluster_subnet": "10.50.0.8/30", "ray_cluster_bind": "10.50.0.9"}, "RAY_CLUSTER_BIND", "/29"),
    ],
)
def test_bad_cluster_settings_name_the_key_and_what_was_found(values: dict[str, str], key: str, words: str) -> None:
    found = problems(_settings(**values))
    assert [p.key for p in found] == [key] or key in [p.key for p in found]
    assert any(words in f"{p.message} {p.hint}" for p in found), found


def test_the_gateway_docker_reserves_is_another_host_address_per_node() -> None:
    env = cluster_env(cluster_network(_settings(**CLUSTER)))  # type: ignore[arg-type]
    assert env == {
        "RAY_CLUSTER_INTERFACE": "eth1",
        "RAY_CLUSTER_SUBNET": "10.50.0.0/24",
        "RAY_CLUSTER_BIND": "10.50.0.10",
        "APPLIANCE_CLUSTER_GATEWAY": "10.50.0.11",
    }
    top = cluster_env(cluster_network(_settings(**{**CLUSTER, "ray_cluster_bind": "10.50.0.254"})))  # type: ignore[arg-type]
    assert top["APPLIANCE_CLUSTER_GATEWAY"] == "10.50.0.253"


def test_make_up_adds_the_cluster_file_only_with_a_cluster_network(tmp_path: Path) -> None:
    make_config_dir(tmp_path)
    set_line(tmp_path / ".secrets", "DASHBOARD_PASSWORD", "a-dashboard-password-1")
    files = ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml")
    plan = plan_stack(load_config(files, gpu_count=0), rendered={})
    assert CLUSTER_FILE not in plan.files and "RAY_CLUSTER_BIND" not in plan.env
    for key, value in CLUSTER.items():
        set_line(tmp_path / ".env", key.upper(), value)
    plan = plan_stack(load_config(files, gpu_count=0), rendered={})
    assert plan.files[-1] == CLUSTER_FILE and plan.env["RAY_CLUSTER_BIND"] == "10.50.0.10"
    one_off = without_cluster(plan)  # make up's chown of the model cache: never serve's fixed address
    assert CLUSTER_FILE not in one_off.files and one_off.files == plan.files[:-1] and one_off.env == plan.env
    set_line(tmp_path / ".env", "RAY_CLUSTER_BIND", "0.0.0.0")
    with pytest.raises(ConfigError) as err:
        load_config(files, gpu_count=0)
    assert any(i.key == "RAY_CLUSTER_BIND" and str(tmp_path / ".env") in str(i.file) for i in err.value.issues)

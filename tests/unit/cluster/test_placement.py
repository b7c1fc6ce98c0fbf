"""Node names, label selectors and the worker's ray start: pure, checked against Ray's own label validators."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray._private.label_utils import validate_label_selector, validate_node_label_syntax

from appliance.cluster.placement import NODE_LABEL, bundle_label_selector, node_labels, node_name_problem
from appliance.cluster.worker import HeadAddress, parse_head_address, worker_argv
from appliance.config.models import ModelSpec
from appliance.errors import ApplianceError


@pytest.mark.parametrize("name", ["head", "gpu-box-2", "a", "n1.lab_b", "x" * 63])
def test_good_names_are_valid_ray_labels(name: str) -> None:
    assert node_name_problem(name) is None
    validate_node_label_syntax({NODE_LABEL: name})  # Ray's own check raises on a bad label
    assert node_labels(name) == f"{NODE_LABEL}={name}"


@pytest.mark.parametrize("name", ["", "-a", "a-", "Head", "a b", "x" * 64, "a/b", "in(a)", "a,b"])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    assert "lower-case letters" in (node_name_problem(name) or "")
    with pytest.raises(ValidationError, match="Ray node name"):
        ModelSpec(id="m", source="/m", nodes=[name])


def test_selectors_are_what_ray_accepts() -> None:
    one = bundle_label_selector(["gpu-box-2"])
    assert one == [{NODE_LABEL: "gpu-box-2"}]
    several = bundle_label_selector(["b", "a", "b"])
    assert several == [{NODE_LABEL: "in(a,b)"}]
    for selector in (one, several):
        assert validate_label_selector(selector[0]) is None
    with pytest.raises(ValueError):
        bundle_label_selector([])


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.5", HeadAddress("10.0.0.5", 6379)),
        ("head.lan:7000", HeadAddress("head.lan", 7000)),
        ("[fd00::1]:6379", HeadAddress("fd00::1", 6379)),
        (" 192.168.1.2 ", HeadAddress("192.168.1.2", 6379)),
        ("fd00::1", HeadAddress("fd00::1", 6379)),
    ],
)
def test_head_addresses(text: str, address: HeadAddress) -> None:
    assert parse_head_address(text) == address


@pytest.mark.parametrize(
    "text", ["", "host:", "host:0", "host:70000", "host:port", "a/b", "fd00::zz", "[fd00::1]x", "user@host"]
)
def test_bad_head_addresses_say_what_was_expected(text: str) -> None:
    with pytest.raises(ApplianceError, match="head address: expected"):
        parse_head_address(text)


def test_worker_argv_joins_with_its_label_and_resources_and_no_token() -> None:
    argv = worker_argv(HeadAddress("fd00::1"), node_name="w1", cpus=16, gpus=2, node_ip="fd00::2", metrics_port=8080)
    assert "--metrics-export-port=8080" in argv
    assert argv[:4] == ["ray", "start", "--address=[fd00::1]:6379", "--block"]
    assert {"--num-cpus=16", "--num-gpus=2", f"--labels={NODE_LABEL}=w1", "--node-ip-address=fd00::2"} <= set(argv)
    assert not any("token" in part.lower() for part in argv)
    gpu = worker_argv(HeadAddress("h"), node_name="w1", cpus=8, gpus=2, gpu_memory_mib=24564)
    assert f"--labels={NODE_LABEL}=w1,appliance.io/gpu-memory-mib=24564" in gpu
    cpu = worker_argv(HeadAddress("h"), node_name="w1", cpus=8, gpus=0, gpu_memory_mib=24564)
    assert f"--labels={NODE_LABEL}=w1" in cpu  # no GPU given to Ray: no memory to report
    with pytest.raises(ApplianceError, match="node name"):
        worker_argv(HeadAddress("h"), node_name="W1", cpus=1, gpus=0)
    with pytest.raises(ApplianceError, match="cpus >= 1"):
        worker_argv(HeadAddress("h"), node_name="w1", cpus=0, gpus=0)

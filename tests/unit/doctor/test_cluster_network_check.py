"""doctor's cluster-network check: only with a cluster network set; the interface must exist and be up (asked of
the kernel for this network namespace)."""

from __future__ import annotations

from appliance.doctor.checks.cluster_network import ClusterNetwork, link_up
from appliance.doctor.finding import Level

CLUSTER = {"RAY_CLUSTER_INTERFACE": "eth1", "RAY_CLUSTER_SUBNET": "10.50.0.0/24", "RAY_CLUSTER_BIND": "10.50.0.10"}


def test_single_node_has_nothing_to_check(make_ctx) -> None:
    assert not ClusterNetwork().applies(make_ctx())


def test_the_kernel_knows_loopback_and_not_a_made_up_name() -> None:
    assert link_up("lo") is True
    assert link_up("no-such-link0") is None


def test_the_interface_must_exist_and_be_up(make_ctx) -> None:
    ctx = make_ctx(**CLUSTER)
    check = ClusterNetwork()
    assert check.applies(ctx)
    for state, level, words in (
        (None, Level.ERROR, "no such interface"),
        (False, Level.ERROR, "ip link set eth1 up"),
        (True, Level.OK, "10.50.0.10"),
    ):
        check.probe = lambda _name, state=state: state  # type: ignore[method-assign]
        [finding] = check.run(ctx)
        assert finding.level is level and words in f"{finding.found} {finding.fix}", finding

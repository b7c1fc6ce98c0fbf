"""leave's drain: which Serve replicas still run on the node (pure), and the command line."""

from __future__ import annotations

from appliance.cli import build_parser
from appliance.cluster.drain import Drained, drained, replicas_on

NODE = "n" * 56


def _actor(name: str, node: str, state: str = "ALIVE") -> dict:
    return {"Name": name, "State": state, "Address": {"NodeID": node}}


def test_only_live_serve_replicas_on_this_node_count() -> None:
    actors = [
        _actor("SERVE_REPLICA::appliance#LLMServer:tiny-w#abc", NODE),
        _actor("SERVE_REPLICA::appliance#LLMServer:tiny-w#def", NODE),  # a second replica: listed once
        _actor("SERVE_REPLICA::appliance#LLMServer:tiny#x", "other"),  # on another node
        _actor("SERVE_REPLICA::appliance#LLMServer:old#y", NODE, state="DEAD"),
        _actor("SERVE_PROXY_ACTOR-" + NODE, NODE),  # Serve's proxy runs on every node: not a replica to move
        _actor("", NODE),
    ]
    assert replicas_on(NODE, actors) == ["LLMServer:tiny-w"]
    assert replicas_on("nowhere", actors) == []


def test_where_the_node_s_deployments_went() -> None:
    before = ["LLMServer:a", "LLMServer:pinned", "LLMServer:slow"]
    actors = [
        _actor("SERVE_REPLICA::appliance#LLMServer:a#2", "other"),  # its replacement runs elsewhere
        _actor("SERVE_REPLICA::appliance#LLMServer:slow#1", NODE),  # not moved yet
        _actor("SERVE_REPLICA::appliance#LLMServer:new#1", NODE),  # came after the drain began: not ours to report
    ]
    outcome = drained(NODE, before, actors)
    assert outcome == Drained(left=["LLMServer:slow"], moved=["LLMServer:a"], stopped=["LLMServer:pinned"])
    assert not outcome.done
    assert drained(NODE, ["LLMServer:a"], actors).done


def test_leave_drains_for_a_minute_unless_told_otherwise() -> None:
    parser = build_parser()
    assert parser.parse_args(["leave"]).drain_timeout == 60.0
    assert parser.parse_args(["leave", "--drain-timeout", "0"]).drain_timeout == 0.0

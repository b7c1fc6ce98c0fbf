"""`status`'s Ray nodes table from Ray's node and actor tables (the shapes ray.nodes() and ray's actor table give)."""

from __future__ import annotations

from appliance.cluster.nodes import nodes_view

HEAD, WORKER = "a" * 56, "b" * 56


def _node(node_id: str, name: str | None, address: str, alive: bool = True, **resources: float) -> dict:
    labels = {"appliance.io/node": name} if name else {}
    return {"NodeID": node_id, "NodeManagerAddress": address, "Alive": alive, "Labels": labels, "Resources": resources}


def _actor(name: str, node_id: str, state: str = "ALIVE") -> dict:
    return {"Name": name, "State": state, "Address": {"NodeID": node_id, "IPAddress": "x", "Port": 1}}


def test_each_node_with_what_runs_there() -> None:
    gpu_worker = _node(WORKER, "worker1", "10.77.0.20", CPU=8.0)
    gpu_worker["Labels"]["appliance.io/gpu-memory-mib"] = "24564"  # what `join` labels a GPU worker with
    nodes = [
        gpu_worker,
        _node(HEAD, "head", "10.77.0.10", CPU=8.0, GPU=2.0, appliance_head=1000.0),
        _node("c" * 56, None, "10.77.0.30", alive=False),
    ]
    actors = [
        _actor("SERVE_REPLICA::appliance#LLMServer:tiny#abc", HEAD),
        _actor("SERVE_REPLICA::appliance#ApplianceIngress#def", HEAD),
        _actor("SERVE_REPLICA::appliance#LLMServer:tiny-w@7#ghi", WORKER),
        _actor("SERVE_REPLICA::appliance#LLMServer:old#jkl", WORKER, state="DEAD"),
        _actor("SERVE_CONTROLLER_ACTOR", HEAD),
        _actor("", HEAD),
    ]
    assert nodes_view(nodes, actors) == [
        {
            "node": "head",
            "address": "10.77.0.10",
            "state": "alive",
            "cpus": 8,
            "gpus": 2,
            "gpu_memory_mib": None,
            "runs": ["ApplianceIngress", "LLMServer:tiny"],
        },
        {
            "node": "worker1",
            "address": "10.77.0.20",
            "state": "alive",
            "cpus": 8,
            "gpus": 0,
            "gpu_memory_mib": 24564,
            "runs": ["LLMServer:tiny-w@7"],
        },
        {
            "node": "?",
            "address": "10.77.0.30",
            "state": "dead",
            "cpus": 0,
            "gpus": 0,
            "gpu_memory_mib": None,
            "runs": [],
        },
    ]

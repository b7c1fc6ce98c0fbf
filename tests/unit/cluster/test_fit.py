"""cluster-fit's decision: each model placeable on the nodes that joined (pinned nodes alive; in GPU mode, stages
of tensor_parallel_size GPUs, each on one node, pipeline_parallel_size of them)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.cluster.fit import cluster_fit
from appliance.config.models import ModelSpec


def node(name: str, gpus: int = 0, state: str = "alive") -> dict[str, Any]:
    return {"node": name, "address": "10.0.0.1", "state": state, "cpus": 16, "gpus": gpus, "runs": []}


def model(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({"id": "m", "source": "/models/m", **fields})


def levels(verdicts) -> list[tuple[str, str]]:
    return [(v.model, v.level) for v in verdicts]


def test_a_model_pinned_to_a_worker_that_has_not_joined_cannot_run() -> None:
    verdicts = cluster_fit([model(nodes=["gpu-b"])], [node("head")], expected_workers=1, gpu=False)
    assert levels(verdicts) == [("", "info"), ("m", "error")]
    assert verdicts[0].found == "0 joined" and "joined: head" in verdicts[1].found
    assert "python -m appliance join" in verdicts[1].fix


def test_a_dead_worker_is_said_and_its_pinned_model_is_an_error() -> None:
    nodes = [node("head", 1), node("gpu-b", 2, state="dead")]
    verdicts = cluster_fit([model(nodes=["gpu-b"]), model(id="h")], nodes, expected_workers=1, gpu=True)
    assert levels(verdicts) == [("", "info"), ("m", "error"), ("h", "ok")]
    assert "gone: gpu-b" in verdicts[0].found


@pytest.mark.parametrize(
    ("tp", "pp", "gpus", "level"),
    [
        (2, 1, {"head": 1, "w": 2}, "ok"),  # the TP group fits on the worker
        (4, 1, {"head": 2, "w": 2}, "error"),  # 4 GPUs in all, but a TP group is on one node
        (2, 2, {"head": 2, "w": 2}, "ok"),  # one stage per node
        (2, 3, {"head": 2, "w": 4}, "ok"),  # two stages on the worker
        (2, 2, {"head": 1, "w": 3}, "error"),  # 4 GPUs, but only one TP-2 stage fits
    ],
)
def test_gpu_stages_each_fit_on_one_node(tp: int, pp: int, gpus: dict[str, int], level: str) -> None:
    nodes = [node(name, count) for name, count in gpus.items()]
    spec = model(tensor_parallel_size=tp, pipeline_parallel_size=pp)
    (verdict,) = cluster_fit([spec], nodes, expected_workers=1, gpu=True)
    assert verdict.level == level, verdict


def test_pinning_limits_the_gpus_counted_and_replicas_are_warned_not_refused() -> None:
    nodes = [node("head", 4), node("w", 1)]
    pinned = model(tensor_parallel_size=2, nodes=["w"])
    (verdict,) = cluster_fit([pinned], nodes, expected_workers=1, gpu=True)
    assert verdict.level == "error" and "w (1 GPU)" in verdict.found  # the head's 4 GPUs are not its to use
    two = model(tensor_parallel_size=2, replicas=3)
    (verdict,) = cluster_fit([two], nodes, expected_workers=1, gpu=True)
    assert verdict.level == "warning" and verdict.found.startswith("room for 2 replica(s)")


def test_cpu_mode_needs_only_a_node() -> None:
    verdicts = cluster_fit([model(nodes=["w"])], [node("head"), node("w")], expected_workers=1, gpu=False)
    assert levels(verdicts) == [("m", "ok")]

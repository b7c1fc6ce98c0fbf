"""Whether each model can be placed on the Ray nodes that have joined, decided purely (``doctor``'s cluster-fit).

A replica needs ``pipeline_parallel_size`` stages of ``tensor_parallel_size`` GPUs, each stage on one node (Ray
places a tensor-parallel group on one node; stages may span nodes), on the nodes the model may use (its
``nodes`` in models.yaml, else every node). GPUs are counted from Ray's node resources (totals: what other
models hold is not subtracted, so a fit here is necessary, not sufficient). In CPU mode only the nodes matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.config.models import ModelSpec


@dataclass(frozen=True)
class Verdict:
    model: str  # "" for the cluster as a whole
    level: str  # ok, info, warning, error (appliance.doctor.finding.Level's values)
    expected: str
    found: str
    fix: str = ""


def _names(nodes: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{n['node']} ({int(n.get('gpus', 0))} GPU)" for n in nodes) or "none"


def model_fit(model: ModelSpec, alive: Mapping[str, Mapping[str, Any]], *, gpu: bool) -> Verdict:
    pinned = list(model.nodes or [])
    usable = [alive[n] for n in (pinned or sorted(alive)) if n in alive]
    where = f"nodes {', '.join(pinned)}" if pinned else "any node"
    if not usable:
        return Verdict(
            model.id,
            "error",
            f"{model.id}: one of {where} joined",
            f"none of them has (joined: {', '.join(sorted(alive)) or 'none'})",
            f"join that machine (python -m appliance join HEAD on it) or change nodes of {model.id} in models.yaml",
        )
    if not gpu:
        return Verdict(model.id, "ok", f"{model.id}: a node to run on ({where})", _names(usable))
    tp, pp = model.tensor_parallel_size, model.pipeline_parallel_size
    stages = sum(int(n.get("gpus", 0)) // tp for n in usable)
    replicas = model.starting_replicas
    shape = f"{pp} stage(s) of {tp} GPU(s), each stage on one node"
    if stages < pp:
        return Verdict(
            model.id,
            "error",
            f"{model.id}: {shape}, on {where}",
            f"{stages} such stage(s) fit on {_names(usable)}",
            f"lower tensor_parallel_size/pipeline_parallel_size of {model.id}, allow it more nodes, or join a "
            f"node with {tp} GPU(s)",
        )
    if stages < pp * replicas:
        return Verdict(
            model.id,
            "warning",
            f"{model.id}: {replicas} replica(s) × {shape}, on {where}",
            f"room for {stages // pp} replica(s) on {_names(usable)}",
            f"lower the replicas of {model.id} or join more GPU nodes",
        )
    return Verdict(model.id, "ok", f"{model.id}: {replicas} replica(s) × {shape}", f"fits on {_names(usable)}")


def cluster_fit(
    models: Sequence[ModelSpec], nodes: Sequence[Mapping[str, Any]], *, expected_workers: int, gpu: bool
) -> list[Verdict]:
    """One verdict per model, and one for the workers that were expected (RAY_WORKER_NODES) but are not alive."""
    alive = {str(n["node"]): n for n in nodes if n.get("state") == "alive"}
    dead = sorted(str(n["node"]) for n in nodes if n.get("state") != "alive" and str(n["node"]) not in alive)
    verdicts = []
    workers = len(alive) - 1  # the head is always one of them
    if workers < expected_workers or dead:
        gone = f"; gone: {', '.join(dead)}" if dead else ""
        verdicts.append(
            Verdict(
                "",
                "info",
                f"{expected_workers} worker node(s) (RAY_WORKER_NODES)",
                f"{max(workers, 0)} joined{gone}",
                "on each worker machine: python -m appliance join HEAD",
            )
        )
    verdicts += [model_fit(model, alive, gpu=gpu) for model in models]
    return verdicts

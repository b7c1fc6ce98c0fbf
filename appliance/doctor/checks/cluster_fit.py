"""Scale-out, with the stack up: every model can be placed on the Ray nodes that have joined (its pinned nodes
alive; in GPU mode enough GPUs per node for its tensor × pipeline parallel stages, and a model pinned to other
machines fits the GPU memory they reported at join). Ray's nodes are asked inside
the serve container, as ``status`` does. Replaces gpu-count (which sees this machine's GPUs only) when workers
are configured."""

from __future__ import annotations

from typing import Any

from appliance.cluster.fit import cluster_fit
from appliance.cluster.nodes import ask_serve
from appliance.config.models import ModelSpec
from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import gpu_mode
from appliance.doctor.checks._stack import project_containers
from appliance.doctor.checks.gpu_memory import memory_fit
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.doctor.gpu_fit import Gpu

NODES_TIMEOUT_S = 45.0  # a Ray driver started inside serve: a few seconds when all is well


class ClusterFit(Check):
    slug = "cluster-fit"
    title = "models placeable on the joined nodes"
    needs_stack = True
    timeout_s = NODES_TIMEOUT_S + 5

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and ctx.config.settings.ray_worker_nodes > 0

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        containers = project_containers(ctx)
        nodes = ask_serve(ctx.docker_host, containers or [], NODES_TIMEOUT_S) if containers else None
        if nodes is None:
            return [
                self.problem(
                    Level.INFO,
                    "Ray's nodes, from the running serve container",
                    "serve is not running or did not answer",
                    "see the services check; python -m appliance status lists the nodes",
                )
            ]
        verdicts = cluster_fit(
            ctx.config.models,
            nodes,
            expected_workers=ctx.config.settings.ray_worker_nodes,
            gpu=gpu_mode(ctx),
        )
        findings = [
            Finding(
                self.slug,
                Level(v.level),
                f"placement: {v.model}" if v.model else "worker nodes",
                expected=v.expected,
                found=v.found,
                fix=v.fix,
            )
            for v in verdicts
        ]
        if gpu_mode(ctx):
            findings += [self._memory(ctx, model, nodes) for model in ctx.config.models if _elsewhere(ctx, model)]
        return findings

    def _memory(self, ctx: DoctorContext, model: ModelSpec, nodes: list[dict[str, Any]]) -> Finding:
        """The memory fit of a model pinned to other machines, from the GPU memory they reported at join (the
        smallest of its nodes': a stage may land on any of them)."""
        title = f"GPU memory fit: {model.id}"
        pinned = [n for n in nodes if n.get("state") == "alive" and n.get("node") in (model.nodes or [])]
        memory = [n.get("gpu_memory_mib") for n in pinned]
        if not pinned or not all(memory):
            unknown = ", ".join(str(n.get("node")) for n in pinned if not n.get("gpu_memory_mib")) or "none joined"
            return self.problem(
                Level.INFO,
                f"the GPU memory of {', '.join(model.nodes or [])}, reported at join",
                f"not known for: {unknown}",
                "join those machines again with this version (python -m appliance join HEAD on each)",
                title=title,
            )
        node = min(pinned, key=lambda n: int(n["gpu_memory_mib"]))
        size = int(node["gpu_memory_mib"]) * 2**20  # (its total: what other models hold there is not known here)
        share = [Gpu(i, f"GPU of {node['node']}", size, size, "") for i in range(model.gpus_per_replica)]
        return memory_fit(self, ctx, model, share, title=title)


def _elsewhere(ctx: DoctorContext, model: ModelSpec) -> bool:
    """Pinned to nodes that do not include this one (gpu-memory checks the models this machine's GPUs run)."""
    assert ctx.config is not None
    return bool(model.nodes) and ctx.config.settings.ray_node_name not in (model.nodes or [])

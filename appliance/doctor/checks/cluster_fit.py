"""Scale-out, with the stack up: every model can be placed on the Ray nodes that have joined (its pinned nodes
alive; in GPU mode enough GPUs per node for its tensor × pipeline parallel stages). Ray's nodes are asked inside
the serve container, as ``status`` does. Replaces gpu-count (which sees this machine's GPUs only) when workers
are configured."""

from __future__ import annotations

from appliance.cluster.fit import cluster_fit
from appliance.cluster.nodes import ask_serve
from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import gpu_mode
from appliance.doctor.checks._stack import project_containers
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

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
        return [
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

"""GPU mode: enough GPUs for every model's tensor × pipeline parallel size, times the replicas it keeps running
(standby ones included: ray.serve.llm gives every rank of every replica a whole GPU)."""

from __future__ import annotations

from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import GPU_QUERY_TIMEOUT_S, gpu_mode, query_gpus
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class GpuCount(Check):
    slug = "gpu-count"
    title = "GPUs for tensor × pipeline parallelism"
    in_stack = True
    timeout_s = GPU_QUERY_TIMEOUT_S

    def applies(self, ctx: DoctorContext) -> bool:
        # with worker nodes a model's GPUs may be on other machines: cluster-fit checks them per joined node
        return gpu_mode(ctx) and ctx.config is not None and ctx.config.settings.ray_worker_nodes == 0

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        gpus = query_gpus()
        count = len(gpus or [])
        findings = []
        for model in ctx.config.models:
            replicas = model.starting_replicas
            need = model.gpus_per_replica * replicas
            if model.gpus_per_replica > count:
                findings.append(
                    self.problem(
                        Level.ERROR,
                        f"{model.id}: {need} GPU(s) (TP {model.tensor_parallel_size}"
                        f" × PP {model.pipeline_parallel_size})",
                        f"{count} GPU(s)",
                        f"lower tensor_parallel_size of {model.id} to {max(1, count)} in models.yaml or add GPUs",
                    )
                )
            elif need > count:
                findings.append(
                    self.problem(
                        Level.ERROR,
                        f"{model.id}: {need} GPU(s) ({replicas} replicas of TP {model.tensor_parallel_size}"
                        f" × PP {model.pipeline_parallel_size}, replicas_standby {model.replicas_standby})",
                        f"{count} GPU(s)",
                        f"lower replicas or replicas_standby of {model.id} in models.yaml, or add GPUs",
                    )
                )
        return findings or [self.ok(found=f"{count} GPU(s)", expected="TP × PP of each model")]

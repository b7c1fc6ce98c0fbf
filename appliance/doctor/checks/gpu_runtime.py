"""GPU mode: Docker has the NVIDIA container runtime (``docker info`` → Runtimes)."""

from __future__ import annotations

from appliance.docker.errors import ApplianceDockerError
from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import gpu_mode
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class GpuRuntime(Check):
    slug = "gpu-runtime"
    title = "NVIDIA container runtime"

    def applies(self, ctx: DoctorContext) -> bool:
        return gpu_mode(ctx)

    def run(self, ctx: DoctorContext) -> list[Finding]:
        try:
            info = probes.docker_snapshot(ctx.docker_host)["info"]
        except ApplianceDockerError as err:
            return [
                self.problem(
                    Level.INFO,
                    "the nvidia runtime in docker info",
                    f"cannot tell: {err}",
                    "fix the Docker Engine check first",
                )
            ]
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        if "nvidia" not in runtimes:
            return [
                self.problem(
                    Level.ERROR,
                    "runtime 'nvidia' in docker info",
                    ", ".join(runtimes) or "none",
                    "install nvidia-container-toolkit, then: sudo nvidia-ctk runtime configure "
                    "--runtime=docker && sudo systemctl restart docker",
                )
            ]
        return [self.ok(found=", ".join(runtimes), expected="nvidia")]

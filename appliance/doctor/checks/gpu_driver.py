"""GPU mode: the NVIDIA driver answers (nvidia-smi) and is recent enough for vLLM's CUDA 12 build."""

from __future__ import annotations

from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import GPU_QUERY_TIMEOUT_S, gpu_mode, query_gpus
from appliance.doctor.checks.docker_engine import version_tuple
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level

MIN_DRIVER = (535,)


class GpuDriver(Check):
    slug = "gpu-driver"
    title = "NVIDIA driver"
    in_stack = True
    timeout_s = GPU_QUERY_TIMEOUT_S

    def applies(self, ctx: DoctorContext) -> bool:
        return gpu_mode(ctx)

    def run(self, ctx: DoctorContext) -> list[Finding]:
        gpus = query_gpus()
        if not gpus:
            return [
                self.problem(
                    Level.ERROR,
                    "nvidia-smi lists the GPUs",
                    "nvidia-smi missing or failing",
                    "install the NVIDIA driver (>= 535), or set ACCELERATOR=cpu",
                )
            ]
        driver = gpus[0].driver
        if version_tuple(driver) < MIN_DRIVER:
            return [self.problem(Level.ERROR, f"driver >= {MIN_DRIVER[0]}", driver, "upgrade the NVIDIA driver")]
        return [self.ok(found=f"driver {driver}, {len(gpus)} × {gpus[0].name}", expected=f">= {MIN_DRIVER[0]}")]

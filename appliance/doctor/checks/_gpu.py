"""Shared by the GPU checks: GPU mode, and the GPUs nvidia-smi reports."""

from __future__ import annotations

from appliance.config.settings import Accelerator
from appliance.doctor import probes
from appliance.doctor.context import DoctorContext
from appliance.doctor.gpu_fit import Gpu, parse_nvidia_smi

# nvidia-smi's own timeout (probes.nvidia_smi_query) plus a second for the check around it
GPU_QUERY_TIMEOUT_S = 6.0


def gpu_mode(ctx: DoctorContext) -> bool:
    return ctx.config is not None and ctx.config.accelerator == Accelerator.GPU


def query_gpus() -> list[Gpu] | None:
    """The GPUs, or None when nvidia-smi is missing or fails."""
    text = probes.nvidia_smi_query()
    return None if text is None else parse_nvidia_smi(text)

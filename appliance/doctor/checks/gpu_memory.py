"""GPU mode: each model's weights + KV cache + overhead fit the memory vLLM may use; if not, what to lower."""

from __future__ import annotations

import json
import os
from pathlib import Path

from appliance.config.models import ModelSpec
from appliance.doctor.base import Check
from appliance.doctor.checks._gpu import GPU_QUERY_TIMEOUT_S, gpu_mode, query_gpus
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.doctor.gpu_fit import Gpu, estimate_fit, find_model_dir, fmt_gib, safetensors_params, shape_from_config


def hub_cache(ctx: DoctorContext) -> Path:
    if ctx.model_cache is not None:
        return ctx.model_cache
    if explicit := os.environ.get("HF_HUB_CACHE"):
        return Path(explicit)
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


class GpuMemory(Check):
    slug = "gpu-memory"
    title = "GPU memory fit"
    timeout_s = GPU_QUERY_TIMEOUT_S

    def applies(self, ctx: DoctorContext) -> bool:
        return gpu_mode(ctx)

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        gpus = query_gpus()
        if not gpus:
            return [self.problem(Level.INFO, "GPU memory figures", "nvidia-smi missing", "see the NVIDIA driver check")]
        findings = []
        head = ctx.config.settings.ray_node_name
        for model in ctx.config.models:
            title = f"GPU memory fit: {model.id}"
            if model.nodes and head not in model.nodes:  # this machine's GPUs are not the ones it will use
                findings.append(
                    self.problem(
                        Level.INFO,
                        "the GPUs of the nodes it runs on",
                        f"pinned to {', '.join(model.nodes)}, not this node ({head})",
                        "cluster-fit checks its GPU count and memory fit from the GPUs those nodes reported at join",
                        title=title,
                    )
                )
                continue
            findings.append(memory_fit(self, ctx, model, gpus[: model.gpus_per_replica], title=title))
        return findings


def memory_fit(check: Check, ctx: DoctorContext, model: ModelSpec, share: list[Gpu], *, title: str) -> Finding:
    """One replica's weights + KV cache + overhead against the GPUs of its share (TP × PP): what to lower if not."""
    model_dir = find_model_dir(model.source, model.revision, hub_cache(ctx))
    if model_dir is None:
        return check.problem(
            Level.INFO,
            "the model's config.json locally",
            f"{model.source} not in {hub_cache(ctx)}",
            f"download it first (huggingface-cli download {model.source}) to have the fit checked",
            title=title,
        )
    config = json.loads((model_dir / "config.json").read_text())
    shape = shape_from_config(config, safetensors_params(model_dir))
    sequences = int(model.engine_kwargs.get("max_num_seqs", 1))
    fit = estimate_fit(
        shape,
        dtype=model.dtype,
        max_model_len=model.max_model_len,
        sequences=sequences,
        gpus=share,
        utilization=model.gpu_memory_utilization,
    )
    need = fit.weights + fit.kv_cache + fit.overhead
    found = (
        f"weights {fmt_gib(fit.weights)} + KV {fmt_gib(fit.kv_cache)} ({fit.max_model_len} tokens × "
        f"{sequences} seq) + overhead {fmt_gib(fit.overhead)} = {fmt_gib(need)}"
    )
    expected = f"<= {fmt_gib(fit.usable)} usable on {len(share)} GPU(s) at {model.gpu_memory_utilization:g}"
    if fit.fits:
        return Finding(check.slug, Level.OK, title, expected=expected, found=found)
    if fit.largest_len > 0:
        fix = (
            f"lower max_model_len of {model.id} to {fit.largest_len} (or fewer max_num_seqs, or raise "
            "gpu_memory_utilization / tensor_parallel_size)"
        )
        return check.problem(Level.ERROR, expected, found, fix, title=title)
    fix = (
        f"the weights alone do not fit: raise tensor_parallel_size of {model.id} to at least "
        f"{max(2, fit.gpus_needed_for_weights)}, or serve a quantized / smaller model"
    )
    return check.problem(Level.ERROR, expected, found, fix, title=title)

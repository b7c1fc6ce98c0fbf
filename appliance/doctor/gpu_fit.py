"""GPU memory fit, estimated purely: weights + KV cache + runtime overhead against usable GPU memory.

- weights: parameter count from the safetensors headers (or, without them, from config.json) × dtype bytes;
- KV cache: layers × 2 × kv_heads × head_dim × dtype bytes per token × max_model_len × concurrent sequences;
- overhead: CUDA context, activations and graphs (a fixed allowance per GPU);
- usable: per GPU, min(free, total × gpu_memory_utilization), over the TP × PP GPUs of one replica.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
MIB = 1024**2
OVERHEAD_PER_GPU = int(1.5 * GIB)
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "BOOL": 1,
}


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    driver: str


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Lines of ``index, name, memory.total, memory.free, driver_version`` (MiB, csv,noheader,nounits)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        gpus.append(Gpu(int(parts[0]), parts[1], int(float(parts[2]) * MIB), int(float(parts[3]) * MIB), parts[4]))
    return gpus


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    kv_heads: int
    head_dim: int
    max_position: int
    torch_dtype: str


def safetensors_params(model_dir: Path) -> int | None:
    """Parameters counted from the safetensors headers only (8-byte length, then a JSON header)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name != "__metadata__":
                total += math.prod(tensor["shape"])
    return total


def shape_from_config(config: dict[str, Any], params: int | None) -> ModelShape:
    text = config.get("text_config", config)
    hidden = int(text["hidden_size"])
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    if params is None:  # no weights to read: the usual decoder estimate
        inter = int(text.get("intermediate_size", 4 * hidden))
        vocab = int(text.get("vocab_size", 32000))
        attn = hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden
        params = layers * (attn + 3 * hidden * inter + 2 * hidden) + 2 * vocab * hidden
    return ModelShape(
        params=params,
        layers=layers,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_position=int(text.get("max_position_embeddings", 0) or 0),
        torch_dtype=str(text.get("torch_dtype") or config.get("torch_dtype") or "float16"),
    )


def serving_dtype_bytes(dtype: str, shape: ModelShape) -> int:
    name = shape.torch_dtype if dtype == "auto" else dtype
    return DTYPE_BYTES.get(name, 2)


@dataclass(frozen=True)
class FitEstimate:
    weights: int
    kv_cache: int
    overhead: int
    usable: int
    max_model_len: int
    fits: bool
    largest_len: int  # largest max_model_len that fits (0: not even the weights)
    gpus_needed_for_weights: int


def estimate_fit(
    shape: ModelShape, *, dtype: str, max_model_len: int | None, sequences: int, gpus: list[Gpu], utilization: float
) -> FitEstimate:
    """Weights and KV cache of one replica spread over ``gpus`` (its TP × PP share)."""
    dtype_bytes = serving_dtype_bytes(dtype, shape)
    length = max_model_len or shape.max_position or 4096
    weights = shape.params * dtype_bytes
    per_token = shape.layers * 2 * shape.kv_heads * shape.head_dim * dtype_bytes
    kv = per_token * length * sequences
    overhead = OVERHEAD_PER_GPU * len(gpus)
    usable = sum(min(g.free_bytes, int(g.total_bytes * utilization)) for g in gpus)
    spare = usable - weights - overhead
    largest = max(0, spare // (per_token * sequences)) if per_token else 0
    per_gpu = min((int(g.total_bytes * utilization) for g in gpus), default=1) - OVERHEAD_PER_GPU
    gpus_needed = math.ceil(weights / per_gpu) if per_gpu > 0 else 0
    return FitEstimate(
        weights=weights,
        kv_cache=kv,
        overhead=overhead,
        usable=usable,
        max_model_len=length,
        fits=weights + kv + overhead <= usable,
        largest_len=int(largest),
        gpus_needed_for_weights=gpus_needed,
    )


def find_model_dir(source: str, revision: str | None, hub_cache: Path) -> Path | None:
    """A local path, or the snapshot of ``org/name`` in the Hugging Face hub cache (nothing is downloaded)."""
    path = Path(source)
    if path.is_absolute():
        return path if (path / "config.json").is_file() else None
    repo = hub_cache / f"models--{source.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    if revision:
        ref = repo / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else revision
        candidate = snapshots / commit
        return candidate if (candidate / "config.json").exists() else None
    ref = repo / "refs" / "main"
    if ref.is_file() and (snapshots / ref.read_text().strip() / "config.json").exists():
        return snapshots / ref.read_text().strip()
    found = [p for p in snapshots.iterdir() if (p / "config.json").exists()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def fmt_gib(value: int) -> str:
    return f"{value / GIB:.1f} GiB"

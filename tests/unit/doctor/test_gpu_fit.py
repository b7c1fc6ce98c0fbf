"""GPU memory fit with a known 7B model (Llama-2-7B's config) and the project's tiny model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from appliance.doctor.gpu_fit import (
    OVERHEAD_PER_GPU,
    estimate_fit,
    find_model_dir,
    parse_nvidia_smi,
    safetensors_params,
    shape_from_config,
)
from tests.unit.doctor.conftest import ONE_GPU, TWO_GPUS

LLAMA2_7B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}
TINY = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 512,
    "max_position_embeddings": 2048,
    "torch_dtype": "float32",
}
LLAMA2_7B_PARAMS = 6_738_415_616


def write_safetensors(path: Path, tensors: dict[str, list[int]], dtype: str = "F16") -> None:
    """Only the header matters to the estimate (no tensor data is written)."""
    header = {name: {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]} for name, shape in tensors.items()}
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def llama_tensors(c: dict) -> dict[str, list[int]]:
    h, i, v, kv = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_key_value_heads"]
    hd = h // c["num_attention_heads"]
    tensors = {"model.embed_tokens.weight": [v, h], "lm_head.weight": [v, h], "model.norm.weight": [h]}
    for n in range(c["num_hidden_layers"]):
        p = f"model.layers.{n}."
        tensors |= {
            p + "self_attn.q_proj.weight": [h, h],
            p + "self_attn.k_proj.weight": [kv * hd, h],
            p + "self_attn.v_proj.weight": [kv * hd, h],
            p + "self_attn.o_proj.weight": [h, h],
            p + "mlp.gate_proj.weight": [i, h],
            p + "mlp.up_proj.weight": [i, h],
            p + "mlp.down_proj.weight": [h, i],
            p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
        }
    return tensors


def test_parse_nvidia_smi() -> None:
    gpus = parse_nvidia_smi(TWO_GPUS)
    assert [g.index for g in gpus] == [0, 1] and gpus[0].driver == "550.54.15"
    assert gpus[0].total_bytes == 24564 * 1024**2 and gpus[1].free_bytes == 23900 * 1024**2


def test_safetensors_headers_give_llama2_7b_parameter_count(tmp_path: Path) -> None:
    tensors = llama_tensors(LLAMA2_7B)
    names = sorted(tensors)
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {n: tensors[n] for n in names[::2]})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {n: tensors[n] for n in names[1::2]})
    assert safetensors_params(tmp_path) == LLAMA2_7B_PARAMS


def test_config_estimate_without_weights_is_close() -> None:
    shape = shape_from_config(LLAMA2_7B, None)
    assert abs(shape.params - LLAMA2_7B_PARAMS) / LLAMA2_7B_PARAMS < 0.001


def test_7b_fp16_fits_a_24_gib_gpu_at_4096_tokens() -> None:
    shape = shape_from_config(LLAMA2_7B, LLAMA2_7B_PARAMS)
    fit = estimate_fit(
        shape, dtype="auto", max_model_len=4096, sequences=1, gpus=parse_nvidia_smi(ONE_GPU), utilization=0.9
    )
    assert fit.weights == LLAMA2_7B_PARAMS * 2  # ~12.6 GiB
    assert fit.kv_cache == 32 * 2 * 32 * 128 * 2 * 4096  # 0.5 MiB per token: 2 GiB
    assert fit.overhead == OVERHEAD_PER_GPU and fit.fits


def test_7b_at_32k_tokens_does_not_fit_and_says_the_largest_length() -> None:
    shape = shape_from_config(LLAMA2_7B, LLAMA2_7B_PARAMS)
    gpus = parse_nvidia_smi(ONE_GPU)
    fit = estimate_fit(shape, dtype="auto", max_model_len=32768, sequences=1, gpus=gpus, utilization=0.9)
    assert not fit.fits
    usable = int(24564 * 1024**2 * 0.9)
    expected = (usable - LLAMA2_7B_PARAMS * 2 - OVERHEAD_PER_GPU) // (32 * 2 * 32 * 128 * 2)
    assert fit.largest_len == expected and 15000 < expected < 16000  # (21.6 - 12.6 - 1.5) GiB / 0.5 MiB
    ok = estimate_fit(shape, dtype="auto", max_model_len=fit.largest_len, sequences=1, gpus=gpus, utilization=0.9)
    assert ok.fits


def test_7b_fp32_weights_alone_need_two_gpus() -> None:
    shape = shape_from_config(LLAMA2_7B, LLAMA2_7B_PARAMS)
    fit = estimate_fit(
        shape, dtype="float32", max_model_len=4096, sequences=1, gpus=parse_nvidia_smi(ONE_GPU), utilization=0.9
    )
    assert not fit.fits and fit.largest_len == 0 and fit.gpus_needed_for_weights == 2


def test_free_memory_limits_below_utilization() -> None:
    busy = "0, GPU, 24564, 4000, 550.54.15\n"  # another process holds most of it
    fit = estimate_fit(
        shape_from_config(LLAMA2_7B, LLAMA2_7B_PARAMS),
        dtype="auto",
        max_model_len=4096,
        sequences=1,
        gpus=parse_nvidia_smi(busy),
        utilization=0.9,
    )
    assert fit.usable == 4000 * 1024**2 and not fit.fits


def test_tiny_model_fits_easily(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", llama_tensors(TINY), dtype="F32")
    shape = shape_from_config(TINY, safetensors_params(tmp_path))
    assert shape.head_dim == 64 and shape.kv_heads == 1
    fit = estimate_fit(
        shape, dtype="auto", max_model_len=None, sequences=256, gpus=parse_nvidia_smi(ONE_GPU), utilization=0.5
    )
    assert fit.max_model_len == 2048 and fit.weights < 2 * 1024**2 and fit.fits
    assert fit.kv_cache == 2 * 2 * 1 * 64 * 4 * 2048 * 256


def test_find_model_dir_in_hub_cache(tmp_path: Path) -> None:
    repo = tmp_path / "models--meta-llama--Llama-2-7b-hf"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(LLAMA2_7B))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert find_model_dir("meta-llama/Llama-2-7b-hf", None, tmp_path) == snap
    assert find_model_dir("meta-llama/Llama-2-7b-hf", "abc123", tmp_path) == snap
    assert find_model_dir("meta-llama/Llama-2-7b-hf", "main", tmp_path) == snap
    assert find_model_dir("other/model", None, tmp_path) is None
    assert find_model_dir(str(snap), None, tmp_path) == snap


@pytest.mark.parametrize("line", ["garbage", "0, a, b"])
def test_bad_nvidia_smi_output_is_an_error(line: str) -> None:
    with pytest.raises(ValueError):
        parse_nvidia_smi(line)

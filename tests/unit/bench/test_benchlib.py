"""The overhead benchmark's pure parts: SSE events, target specs, vLLM flags, and the per-round summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from bench_overhead import parse_target, summarise  # noqa: E402
from benchlib.client import _data, _events, percentile  # noqa: E402
from benchlib.targets import raw_vllm_command, vllm_cli  # noqa: E402


def test_events_split_on_blank_lines_only() -> None:
    text = json.dumps({"choices": [{"delta": {"content": "a\u2028b\rc"}}]}, ensure_ascii=False).encode()
    stream = b"data: " + text + b"\n\ndata: [DONE]\n\npartial"
    events, rest = _events(stream)
    assert [_data(e) for e in events] == [text, b"[DONE]"]
    assert rest == b"partial"
    assert json.loads(_data(events[0]))["choices"][0]["delta"]["content"] == "a\u2028b\rc"


def test_events_across_reads_and_crlf() -> None:
    events, rest = _events(b'data: {"x": 1}\r\n\r\ndata: {"x"')
    assert [_data(e) for e in events] == [b'{"x": 1}'] and rest == b'data: {"x"'
    events, rest = _events(rest + b": 2}\n\n")
    assert [_data(e) for e in events] == [b'{"x": 2}'] and rest == b""
    assert _data(b": keep-alive comment") is None


def test_percentile_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile([], 50) != percentile([], 50)  # nan


def test_parse_target() -> None:
    assert parse_target("stack") == ("stack", {})
    assert parse_target(" host:SERVE_STREAM_BATCHING_MS=100,RAY_WORKER_NICENESS=0") == (
        "host",
        {"SERVE_STREAM_BATCHING_MS": "100", "RAY_WORKER_NICENESS": "0"},
    )
    with pytest.raises(ValueError, match="unknown side"):
        parse_target("gpu")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_target("stack:nonsense")


def test_vllm_cli_from_engine_kwargs() -> None:
    argv = vllm_cli(
        {
            "max_model_len": 1024,
            "trust_remote_code": False,
            "enforce_eager": True,
            "revision": None,
            "load_format": "safetensors",
        }
    )
    assert argv == ["--max-model-len", "1024", "--enforce-eager", "--load-format", "safetensors"]


def _run(target: str, c: int, n: int, tok_s: float, ttft: float) -> dict:
    return {
        "target": target,
        "concurrency": c,
        "round": n,
        "tok_s": tok_s,
        "ttft_p50_ms": ttft,
        "errors": 0,
        "cpu_ms_per_1k_outside_engine": 100.0 if target == "raw vLLM" else 300.0,
    }


def test_summary_ratios_are_taken_within_each_round() -> None:
    runs = [
        _run("raw vLLM", 8, 1, 1000, 10),
        _run("stack", 8, 1, 500, 30),
        _run("raw vLLM", 8, 2, 2000, 12),
        _run("stack", 8, 2, 1800, 20),
        _run("raw vLLM", 8, 3, 1500, 11),
        _run("stack", 8, 3, 1200, 25),
    ]
    table, numbers = summarise(runs, ["raw vLLM", "stack"], [8])
    summary = numbers["stack c=8"]
    # per round 0.5, 0.9, 0.8: not median(stack) / median(raw) = 1200 / 1500
    assert summary["ratio_median"] == pytest.approx(0.8)
    assert (summary["ratio_min"], summary["ratio_max"]) == (pytest.approx(0.5), pytest.approx(0.9))
    assert summary["ttft_delta_median_ms"] == pytest.approx(14)
    assert "| 8 | 1,500 (1,000–2,000) | 1,200 (500–1,800) | 0.80 (0.50–0.90) |" in table


def test_raw_vllm_gets_the_appliances_engine_arguments_and_environment(tmp_path: Path) -> None:
    from appliance.serve.builder import CPU_KV_CACHE_GIB

    cmd, env = raw_vllm_command(tmp_path, 8123)
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--model") + 1] == str(tmp_path)
    assert cmd[cmd.index("--port") + 1] == "8123"
    assert "--max-model-len" in cmd  # an engine argument the appliance derives for the model
    assert env["VLLM_CPU_KVCACHE_SPACE"] == CPU_KV_CACHE_GIB

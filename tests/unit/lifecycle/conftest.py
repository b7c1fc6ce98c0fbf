"""A model directory as the hub or make_tiny_model.py writes one: config, tokenizer files, safetensors weights
(the weights' bytes are random: integrity is about bytes, not about what they mean)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def write_model(directory: Path, *, weights: bytes | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 128}))
    (directory / "generation_config.json").write_text("{}")
    (directory / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    (directory / "tokenizer_config.json").write_text("{}")
    (directory / "chat_template.jinja").write_text("{{ messages }}")
    (directory / "model.safetensors").write_bytes(weights if weights is not None else os.urandom(64 * 1024))
    (directory / "README.md").write_text("# tiny\n")
    (directory / ".cache").mkdir(exist_ok=True)
    (directory / ".cache" / "download.lock").write_text("")
    return directory


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model(tmp_path / "models" / "tiny")

"""The Batch API's settings as the ingress gets them: relative paths are the project's (the serve command's
working directory in the stack, where data/batch and data/registry are mounted), not the settings copy's."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.errors import ConfigError
from appliance.serve.ingress_config import IngressConfig
from tests.helpers import make_config_dir, set_line


def _config(tmp_path: Path, **lines: str):
    root = make_config_dir(tmp_path)
    set_line(root / ".env", "ACCELERATOR", "cpu")
    for key, value in lines.items():
        set_line(root / ".env", key, value)
    files = ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml")
    return load_config(files, gpu_count=0)


def test_batch_settings_reach_the_ingress_with_paths_made_absolute(tmp_path: Path) -> None:
    config = _config(tmp_path, BATCH_FILE_MAX_MB="3", BATCH_CONCURRENCY="7", BATCH_IDLE_MAX_LIVE_REQUESTS="0")
    ingress = IngressConfig.from_config(config, audit_path="a.log", models=())
    assert ingress.batch is not None
    assert (ingress.batch.file_max_bytes, ingress.batch.concurrency, ingress.batch.idle_max_live) == (3 << 20, 7, 0)
    assert ingress.batch.max_requests == 50000
    assert ingress.batch.data_dir == str(tmp_path / "data/batch")  # default: the .env's directory
    stack = tmp_path / "appliance"  # the serve command in the stack: its working directory, not /run/appliance
    moved = IngressConfig.from_config(config, audit_path="a.log", models=(), root=stack)
    assert moved.batch is not None and moved.batch.data_dir == str(stack / "data/batch")
    assert moved.registry_url == f"sqlite:///{stack}/data/registry/registry.db"
    absolute = IngressConfig.from_config(_config(tmp_path, BATCH_DATA_DIR="/srv/batch"), audit_path="a", models=())
    assert absolute.batch is not None and absolute.batch.data_dir == "/srv/batch"


def test_batch_settings_are_validated(tmp_path: Path) -> None:
    for key, value in (
        ("BATCH_FILE_MAX_MB", "0"),
        ("BATCH_CONCURRENCY", "1000"),
        ("BATCH_MAX_REQUESTS", "x"),
        ("BATCH_IDLE_MAX_LIVE_REQUESTS", "-1"),
    ):
        (tmp_path / key).mkdir()
        with pytest.raises(ConfigError) as caught:
            _config(tmp_path / key, **{key: value})
        issues = [str(issue) for issue in caught.value.issues]
        assert any(key in issue for issue in issues), (key, issues)

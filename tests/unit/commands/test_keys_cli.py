"""``keys create|list|revoke`` against real files: hashes only, shown once, mode 0600."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.config.keys import find_key
from tests.helpers import make_config_dir, run_cli


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    return make_config_dir(tmp_path, with_models=True)


def test_create_list_revoke(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "keys", "create", "alice", "--models", "qwen2.5-0.5b-instruct")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("sk-")
    secrets_text = (cfg / ".secrets").read_text()
    assert key not in secrets_text
    assert "API_KEY_ALICE=sha256:" in secrets_text
    assert stat.S_IMODE((cfg / ".secrets").stat().st_mode) == 0o600

    code, out, _ = run_cli(capsys, "keys", "create", "ops", "--role", "admin", "--json")
    admin_key = json.loads(out)["key"]
    config = load_config(ConfigFiles(), gpu_count=0)
    assert find_key(key, config.secrets.api_keys).name == "alice"
    assert find_key(admin_key, config.secrets.api_keys).role.value == "admin"

    code, out, _ = run_cli(capsys, "keys", "list", "--json")
    assert json.loads(out) == [
        {"name": "alice", "role": "user", "models": "qwen2.5-0.5b-instruct"},
        {"name": "ops", "role": "admin", "models": "all"},
    ]
    assert key not in out and admin_key not in out

    assert run_cli(capsys, "keys", "revoke", "alice")[0] == 0
    code, _, err = run_cli(capsys, "keys", "revoke", "alice")
    assert code == 1 and "no key named 'alice'" in err
    assert find_key(key, load_config(ConfigFiles(), gpu_count=0).secrets.api_keys) is None


def test_create_refuses_duplicates_unknown_models_and_bad_names(cfg: Path, capsys) -> None:
    assert run_cli(capsys, "keys", "create", "bob", "--models", "*")[0] == 0
    before = (cfg / ".secrets").read_text()
    code, _, err = run_cli(capsys, "keys", "create", "bob", "--models", "*")
    assert code == 2 and "exists" in err
    code, _, err = run_cli(capsys, "keys", "create", "carol", "--models", "gpt-9")
    assert code == 2 and "gpt-9" in err and "served: qwen2.5-0.5b-instruct" in err
    code, _, err = run_cli(capsys, "keys", "create", "dave")
    assert code == 2 and "--models" in err
    code, _, err = run_cli(capsys, "keys", "create", "bad-name!", "--models", "*")
    assert code == 2 and "key name" in err
    assert (cfg / ".secrets").read_text() == before, "a refused command changes nothing"
    code, out, _ = run_cli(capsys, "keys", "create", "bob", "--models", "*", "--force")
    assert code == 0 and out.strip() not in (cfg / ".secrets").read_text()


def test_keys_on_an_invalid_config_reports_it(cfg: Path, capsys) -> None:
    (cfg / ".env").write_text("HTTP_PORT=x\n")
    code, _, err = run_cli(capsys, "keys", "create", "x", "--models", "*")
    assert code == 2
    assert ".env:HTTP_PORT" in err

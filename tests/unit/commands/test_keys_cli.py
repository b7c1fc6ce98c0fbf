"""``keys create|update|list|revoke`` against real files: hashes only, shown once, mode 0600."""

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
    unlimited = {"rpm": None, "tpm": None, "tokens_per_day": None}
    assert json.loads(out) == [
        {"name": "alice", "role": "user", "models": "qwen2.5-0.5b-instruct", **unlimited},
        {"name": "ops", "role": "admin", "models": "all", **unlimited},
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


def test_budgets_are_set_updated_listed_and_keep_the_key(cfg: Path, capsys) -> None:
    code, out, err = run_cli(
        capsys,
        "keys",
        "create",
        "alice",
        "--models",
        "*",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--daily-tokens",
        "2000000",
    )
    assert code == 0, err
    key = out.strip()
    assert "budgets: rpm 60, tpm 100000, tokens_per_day 2000000" in err
    line = next(x for x in (cfg / ".secrets").read_text().splitlines() if x.startswith("API_KEY_ALICE="))
    assert line.endswith(";models=*;rpm=60;tpm=100000;tokens_per_day=2000000")

    code, out, err = run_cli(capsys, "keys", "update", "alice", "--tpm", "none", "--rpm", "120", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "name": "alice",
        "role": "user",
        "models": "all",
        "rpm": 120,
        "tpm": None,
        "tokens_per_day": 2000000,
    }
    record = find_key(key, load_config(ConfigFiles(), gpu_count=0).secrets.api_keys)
    assert record is not None and (record.limits.rpm, record.limits.tpm) == (120, None), "same key, new budgets"
    assert stat.S_IMODE((cfg / ".secrets").stat().st_mode) == 0o600

    code, out, _ = run_cli(capsys, "keys", "list")
    assert "tokens/day" in out and "2000000" in out and "120" in out
    code, out, _ = run_cli(capsys, "keys", "list", "--json")
    assert json.loads(out)[0]["rpm"] == 120 and key not in out

    code, _, err = run_cli(capsys, "keys", "update", "alice", "--models", "qwen2.5-0.5b-instruct", "--role", "user")
    assert code == 0 and "models qwen2.5-0.5b-instruct" in err and "rpm 120" in err


def test_budget_flags_are_checked_and_refusals_change_nothing(cfg: Path, capsys) -> None:
    assert run_cli(capsys, "keys", "create", "bob", "--models", "*")[0] == 0
    before = (cfg / ".secrets").read_text()
    code, _, err = run_cli(capsys, "keys", "create", "carol", "--models", "*", "--rpm", "0")
    assert code == 2 and "--rpm: expected a whole number from 1 to" in err
    code, _, err = run_cli(capsys, "keys", "create", "carol", "--models", "*", "--tpm", "none")
    assert code == 2 and "--tpm" in err, "'none' is for update; create's default is already unlimited"
    code, _, err = run_cli(capsys, "keys", "update", "bob", "--daily-tokens", "lots")
    assert code == 2 and "--daily-tokens: expected a whole number from 1 to" in err and "or 'none'" in err
    code, _, err = run_cli(capsys, "keys", "update", "nobody", "--rpm", "5")
    assert code == 1 and "no key named 'nobody'" in err
    code, _, err = run_cli(capsys, "keys", "update", "bob", "--models", "gpt-9")
    assert code == 2 and "gpt-9" in err
    assert (cfg / ".secrets").read_text() == before, "a refused command changes nothing"


def test_a_token_budget_below_a_models_cap_is_warned_about(cfg: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "keys", "create", "tiny", "--models", "*", "--tpm", "1000")
    assert code == 0
    assert "note: tpm 1000 is not above the max_tokens cap of qwen2.5-0.5b-instruct (2048)" in err


def test_a_malformed_budget_in_secrets_is_reported_as_file_key(cfg: Path, capsys) -> None:
    with (cfg / ".secrets").open("a") as handle:
        handle.write(f"API_KEY_EVE=sha256:{'a' * 64};role=admin;rpm=fast\n")
    code, _, err = run_cli(capsys, "validate")
    assert code == 2
    assert "API_KEY_EVE" in err and "expected rpm=<a whole number from 1 to" in err
    assert "fast" not in err, "a secrets line is never echoed"

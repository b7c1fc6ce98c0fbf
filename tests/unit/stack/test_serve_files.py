"""What `make up` gives the serve container (data/run/serve), who it runs as, and the keys CLI keeping the
hash-only key file current; the Datadog key as a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.commands.serve import in_stack_files
from appliance.config import ConfigFiles, load_config
from appliance.serve.keystore import KeyStore, read_key_records
from appliance.stack.plan import SERVE_UID, plan_stack, serve_user
from appliance.stack.render import render_run_dir
from tests.helpers import make_config_dir, set_line

SECRET_VALUES = {
    "GRAFANA_ADMIN_PASSWORD": "grafana-password-123",
    "DASHBOARD_PASSWORD": "dashboard-password-1",
    "DATADOG_API_KEY": "0123456789abcdef0123456789abcdef",
    "HF_TOKEN": "hf_the_token_value",
}


def _project(root: Path):
    make_config_dir(root)
    for key, value in SECRET_VALUES.items():
        set_line(root / ".secrets", key, value)
    assert (
        main(
            [
                "keys",
                "create",
                "alice",
                "--role",
                "admin",
                "--env",
                str(root / ".env"),
                "--secrets",
                str(root / ".secrets"),
            ]
        )
        == 0
    )
    return load_config(
        ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"), gpu_count=0
    )


def _render(root: Path, config):
    return render_run_dir(config, version="1.0", run_dir=root / "data" / "run", certs_dir=root / "certs")


def test_serve_sees_settings_key_hashes_and_tokens_but_no_other_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _project(tmp_path)
    rendered = _render(tmp_path, config)
    serve_dir = tmp_path / "data" / "run" / "serve"
    assert sorted(p.name for p in serve_dir.iterdir()) == ["api_keys", "hf_token", "ray_auth_token", "settings.env"]
    everything = b"".join(p.read_bytes() for p in serve_dir.iterdir() if p.name != "hf_token")
    for key in ("GRAFANA_ADMIN_PASSWORD", "DASHBOARD_PASSWORD", "DATADOG_API_KEY", "HF_TOKEN"):
        assert SECRET_VALUES[key].encode() not in everything, key
    assert (serve_dir / "hf_token").read_bytes() == b"hf_the_token_value"
    assert (serve_dir / "settings.env").read_bytes() == (tmp_path / ".env").read_bytes()
    keys = (serve_dir / "api_keys").read_text()
    assert [line.split("=", 1)[0] for line in keys.splitlines() if not line.startswith("#")] == ["API_KEY_ALICE"]
    for path in [serve_dir, *serve_dir.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, f"{path.name} is not for others ({mode:o})"
        if os.geteuid() == 0:
            assert path.stat().st_gid == SERVE_UID, "root gives the serve container's group"
    token = (serve_dir / "ray_auth_token").read_bytes()
    assert len(token) == 64 and _render(tmp_path, config)["serve"]["ray_auth_token"] == token, "made once, kept"
    # the serve container's own loading: no .secrets, the same settings and models, the keys
    mounted = in_stack_files(serve_dir)
    inside = load_config(mounted, gpu_count=0)
    assert inside.settings == config.settings and inside.models == config.models
    assert [r.name for r in inside.secrets.api_keys] == ["alice"] and not inside.secrets.hf_token
    assert not inside.secrets.datadog_api_key and not inside.secrets.grafana_admin_password
    # Ray's token is in serve's digest (a new one must restart Ray); the API keys are not (reloaded live)
    plan = plan_stack(config, rendered=rendered, euid=0, egid=0)
    (serve_dir / "ray_auth_token").unlink()
    again = plan_stack(config, rendered=_render(tmp_path, config), euid=0, egid=0)
    assert again.env["APPLIANCE_SERVE_CONFIG_HASH"] != plan.env["APPLIANCE_SERVE_CONFIG_HASH"]


def test_no_hf_token_no_file_and_models_yaml_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = _project(tmp_path)
    _render(tmp_path, config)
    set_line(tmp_path / ".secrets", "HF_TOKEN", "")
    (tmp_path / "models.yaml").write_text("models:\n  - id: tiny\n    source: /appliance/models/tiny\n")
    config = load_config(
        ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml"), gpu_count=0
    )
    _render(tmp_path, config)
    serve_dir = tmp_path / "data" / "run" / "serve"
    assert not (serve_dir / "hf_token").exists(), "a removed HF_TOKEN leaves no file behind"
    assert (serve_dir / "models.yaml").read_bytes() == (tmp_path / "models.yaml").read_bytes()
    assert [m.id for m in load_config(in_stack_files(serve_dir), gpu_count=0).models] == ["tiny"]


def test_keys_create_update_and_revoke_reach_the_running_ingress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = _project(tmp_path)
    _render(tmp_path, config)
    key_file = tmp_path / "data" / "run" / "serve" / "api_keys"
    store = KeyStore(read_key_records(key_file), key_file, reload_interval=0)
    files = ["--env", str(tmp_path / ".env"), "--secrets", str(tmp_path / ".secrets")]
    assert main(["keys", "create", "bob", "--role", "admin", *files]) == 0
    assert sorted(r.name for r in store.records()) == ["alice", "bob"]
    assert main(["keys", "revoke", "alice", *files]) == 0
    assert [r.name for r in store.records()] == ["bob"]
    assert SECRET_VALUES["HF_TOKEN"] not in key_file.read_text()


def test_keys_outside_a_stack_write_no_run_dir(tmp_path: Path) -> None:
    _project(tmp_path)
    assert not (tmp_path / "data").exists(), "no make up here: nothing to refresh"


def test_the_serve_container_is_never_root() -> None:
    assert serve_user(0, 0) == f"{SERVE_UID}:{SERVE_UID}"
    assert serve_user(1000, 1000) == f"{SERVE_UID}:1000", "a non-root host: the group that owns data/run/serve"
    assert not serve_user(1000, 0).startswith("0:")


def test_datadog_key_is_a_file_not_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _render(tmp_path, _project(tmp_path))
    run = tmp_path / "data" / "run"
    assert SECRET_VALUES["DATADOG_API_KEY"].encode() not in (run / "datadog.env").read_bytes()
    assert (run / "datadog_api_key").read_bytes() == SECRET_VALUES["DATADOG_API_KEY"].encode()
    assert stat.S_IMODE((run / "datadog_api_key").stat().st_mode) == 0o600


def test_local_weights_become_readable_by_the_serve_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "models" / "tiny" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    weights.chmod(0o600)
    weights.parent.chmod(0o700)
    _render(tmp_path, _project(tmp_path))
    assert stat.S_IMODE(weights.stat().st_mode) == 0o640
    assert stat.S_IMODE(weights.parent.stat().st_mode) == 0o750

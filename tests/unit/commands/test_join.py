"""`python -m appliance join|leave` refusals before anything starts: no cluster network, no or a bad token, a bad
head address. (The join itself, with real Ray in two containers, is the e2e-docker tier's test_scale_out.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.commands.cluster import read_token
from appliance.errors import ApplianceError
from tests.helpers import make_config_dir, run_cli, set_line


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    return make_config_dir(tmp_path, with_models=True)


def _cluster(cfg: Path) -> None:
    set_line(cfg / ".env", "RAY_NODE_NAME", "gpu-b")
    set_line(cfg / ".env", "RAY_CLUSTER_INTERFACE", "eth1")
    set_line(cfg / ".env", "RAY_CLUSTER_SUBNET", "10.50.0.0/24")
    set_line(cfg / ".env", "RAY_CLUSTER_BIND", "10.50.0.20")


def test_join_without_a_cluster_network_names_the_settings(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "join", "10.50.0.10", "--token-file", str(cfg / "t"))
    assert code != 0 and "RAY_CLUSTER_INTERFACE" in err and ".env" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "leave")
    assert code != 0 and "no cluster network" in err


def test_join_needs_the_heads_token(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cluster(cfg)
    code, _, err = run_cli(capsys, "join", "10.50.0.10")
    assert code != 0 and "--token-file" in err
    (cfg / "short").write_text("abc\n")
    code, _, err = run_cli(capsys, "join", "10.50.0.10", "--token-file", str(cfg / "short"))
    assert code != 0 and "expected the head's Ray token" in err and "abc" not in err
    code, _, err = run_cli(capsys, "join", "10.50.0.10", "--token-file", str(cfg / "missing"))
    assert code != 0 and "cannot read it" in err
    assert not (cfg / "data" / "run" / "worker").exists(), "nothing is written before the token is good"


def test_join_refuses_a_bad_head_address(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cluster(cfg)
    (cfg / "token").write_text("a" * 64 + "\n")
    code, _, err = run_cli(capsys, "join", "10.50.0.10:99999", "--token-file", str(cfg / "token"))
    assert code != 0 and "port 1-65535" in err


def test_a_token_is_one_long_word(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("f" * 64 + "\n")
    assert read_token(good) == b"f" * 64
    spaced = tmp_path / "spaced"
    spaced.write_text("f" * 40 + " " + "f" * 40)
    with pytest.raises(ApplianceError, match="expected the head's Ray token"):
        read_token(spaced)


def test_what_a_stuck_worker_said_is_its_last_telling_line_without_rays_prefix() -> None:
    from appliance.commands.cluster import last_said

    logs = (
        "Local node IP: 10.50.0.20\n"
        "[2026-12-06 03:43:30,165 W 10 10] gcs_client.cc:210: Failed to connect to GCS at 10.50.0.10:6379\n"
        "still trying\n"
    )
    assert last_said(logs) == "gcs_client.cc:210: Failed to connect to GCS at 10.50.0.10:6379"
    assert last_said("") == "nothing"

"""The CLI surface: every subcommand has --help, stack commands refuse a missing config, exit codes hold."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_cli

SUBCOMMANDS = [
    "validate",
    "init",
    "keys",
    "keys create",
    "keys list",
    "keys revoke",
    "config",
    "up",
    "down",
    "logs",
    "serve",
    "status",
    "doctor",
    "supervise",
]
STACK_COMMANDS = ["up", "down", "logs"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0
    assert out.startswith("usage: python -m appliance")


@pytest.mark.parametrize("command", STACK_COMMANDS)
def test_stack_commands_without_config_name_the_files_and_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, command)
    assert code == 2
    assert ".env:(file): expected the file to exist" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "no-such-command")[0] == 2
    assert run_cli(capsys)[0] == 2
    assert run_cli(capsys, "keys")[0] == 2
    assert run_cli(capsys, "keys", "create", "x", "--role", "root")[0] == 2


def test_python_dash_m_entry_point_runs(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "validate",
            "--env",
            str(tmp_path / "none.env"),
            "--secrets",
            str(tmp_path / "none.secrets"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "none.env:(file): expected the file to exist" in result.stderr
    assert "Traceback" not in result.stderr

"""Helpers shared by the test tiers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance.cli import main

ROOT = Path(__file__).resolve().parent.parent


def make_config_dir(target: Path, *, with_models: bool = False) -> Path:
    """``target`` with .env and .secrets (0600) copied from the examples, and models.yaml if asked."""
    shutil.copyfile(ROOT / ".env.example", target / ".env")
    shutil.copyfile(ROOT / ".secrets.example", target / ".secrets")
    (target / ".secrets").chmod(0o600)
    if with_models:
        shutil.copyfile(ROOT / "models.example.yaml", target / "models.yaml")
    return target


def set_line(path: Path, key: str, value: str) -> None:
    """Replace ``KEY=…`` in a dotenv file (append when absent) — plain text edit, as a person would."""
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{key}="):
            lines[index] = f"{key}={value}"
            break
    else:
        lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``python -m appliance ARGS`` in-process; returns (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse: --help, usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err

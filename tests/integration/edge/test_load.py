"""scripts/load_test.py against the real edge: a flood gets only 2xx and 429, never a 5xx."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT
from tests.integration.edge.conftest import BURST, Edge


def _load(edge: Edge, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/load_test.py"),
            "--url",
            edge.base,
            "--json",
            "--cacert",
            str(edge.cert_file),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr}


def test_flood_gets_only_2xx_and_429(edge: Edge) -> None:
    code, result = _load(
        edge,
        "--path",
        "/v1/echo",
        "--requests",
        "300",
        "--concurrency",
        "24",
        "--source-address",
        "127.0.3.1",
        "--key",
        "sk-load-test",
    )
    assert code == 0, result
    assert result["sent"] == 300
    assert result["accepted"] >= 1 + BURST and result["rate_limited_429"] >= 300 - (1 + BURST) - 5
    assert result["accepted"] + result["rate_limited_429"] == 300
    assert result["server_errors_5xx"] == result["connection_errors"] == result["other_4xx"] == 0
    assert result["retry_after"] == ["10"]


def test_refuses_targets_outside_loopback() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/load_test.py"), "--url", "https://192.0.2.1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "non-loopback 192.0.2.1" in done.stderr


def test_5xx_answers_make_the_run_fail(edge: Edge) -> None:
    code, result = _load(
        edge, "--path", "/v1/fail", "--requests", "3", "--concurrency", "1", "--source-address", "127.0.3.2"
    )
    assert code == 1 and result["server_errors_5xx"] == 3 and result["accepted"] == 0

"""The lifecycle benchmark's report: every change kind in the table, and a failed check makes it fail."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from bench_lifecycle import ADDED, report  # noqa: E402


def _change(total: float, seconds: dict[str, float], failed: int = 0, answers: int | None = None) -> dict:
    change = {"status": "done", "total_s": total, "seconds": seconds, "requests": 100, "failed": failed}
    return change | ({"answers": answers} if answers is not None else {})


def _run(number: int, *, removed_answers: int = 404) -> dict:
    return {
        "run": number,
        "deploy": _change(95.0 + number, {"ready": 90.0 + number, "smoke": 0.3, "switch": 0.01}),
        "rollback": _change(85.0, {"ready": 80.0}),
        "add": _change(120.0, {"ready": 110.0 + number, "smoke": 0.2}, answers=200),
        "remove": _change(9.5, {"remove": 8.0}, answers=removed_answers),
    }


def test_the_report_tables_add_and_remove_beside_deploy_and_rollback(tmp_path: Path, capsys) -> None:
    assert report([_run(1), _run(2), _run(3)], 2, tmp_path) == 0
    table = (tmp_path / "bench_lifecycle.md").read_text()
    assert "| add a model → ready (s) | 112.00 | 113.00 | ≤ 600 |" in table
    assert "| remove, request → done (s) | 9.50 | 9.50 | - |" in table
    assert "| requests failed during changes (2 streams) | 0 of 1200 | | 0 |" in table
    assert f"| {ADDED} answered after add / after remove | 3 × 200 / 3 × 404 of 3 | | all |" in table
    assert table.splitlines()[-1] in capsys.readouterr().out


def test_a_removed_model_that_still_answers_fails_the_benchmark(tmp_path: Path) -> None:
    assert report([_run(1), _run(2, removed_answers=200)], 2, tmp_path) == 1

"""Test tiers and the no-silent-skip rule.

Tiers follow the folder: tests/unit → ``unit``, tests/integration → ``integration``, tests/e2e → ``e2e``.
``make test`` runs them all. Under CI (``CI=true``) a skipped test fails the run: a missing tool must be
installed by the set-up, not skipped past.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "e2e", "e2e_docker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.path)).relative_to(TESTS).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live under tests/unit, tests/integration, tests/e2e or tests/e2e_docker"
            )
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _logging_enabled_after_each_test() -> Iterator[None]:
    """vLLM's ``suppress_logging()`` (vllm/logger.py) does not restore logging when the code inside it raises (no
    try/finally): a test that meets that leaves ``logging.disable`` on for every test after it, whose caplog then
    sees nothing (tests/unit/lifecycle after tests/unit/serve)."""
    yield
    logging.disable(logging.NOTSET)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(
            f"CI: {skipped} test(s) skipped; in CI every tool must be installed, nothing skipped", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

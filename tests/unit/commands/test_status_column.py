"""`status`'s watchdog column says who keeps a service up, and flags one stopped by hand."""

from __future__ import annotations

from appliance.commands.status import _watchdog_column
from appliance.docker.model import ContainerState


def _c(status: str, watched: bool = True) -> ContainerState:
    return ContainerState(
        id="x" * 12,
        name="n",
        service="s",
        status=status,
        health=None,
        started_at=None,
        finished_at=None,
        exit_code=0,
        start_period_s=0,
        restart_count=0,
        labels={} if watched else {"appliance.watchdog": "false"},
    )


def test_the_column_names_who_keeps_the_service_up() -> None:
    assert _watchdog_column(_c("running"), {}) == "watching"
    assert _watchdog_column(_c("running", watched=False), {}) == "not watched (Docker restarts a crash)"
    assert _watchdog_column(_c("exited", watched=False), {}) == "stopped by hand: start it"  # `docker kill supervisor`
    assert _watchdog_column(_c("exited"), {"stopped_by_operator": True}) == "stopped by hand: start it"
    assert _watchdog_column(_c("exited"), {"gave_up": True}) == "gave up"

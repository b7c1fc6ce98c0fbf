"""Container state and events from the engine's JSON (shapes as Docker 20.10 returns them)."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.docker.model import event_from_raw, parse_time, state_from_inspect

INSPECT = {
    "Id": "f" * 64,
    "Name": "/appliance-serve-1",
    "RestartCount": 0,
    "State": {
        "Status": "running",
        "ExitCode": 0,
        "StartedAt": "2026-11-23T11:30:01.123456789Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {"Status": "starting"},
    },
    "Config": {
        "Labels": {"com.docker.compose.project": "appliance", "com.docker.compose.service": "serve"},
        "Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": 600_000_000_000},
    },
}


def test_state_from_inspect() -> None:
    state = state_from_inspect(INSPECT)
    assert state.name == "appliance-serve-1" and state.service == "serve"
    assert state.health == "starting" and state.start_period_s == 600
    assert state.started_at == datetime(2026, 11, 23, 11, 30, 1, 123456, tzinfo=UTC)
    assert state.finished_at is None and state.watched and not state.running_and_healthy
    assert state.not_failing, "a container still in its start period is not failing (no false ServiceUnhealthy)"
    from dataclasses import replace

    assert not replace(state, health="unhealthy").not_failing and not replace(state, status="exited").not_failing
    assert replace(state, health=None).not_failing and replace(state, health="healthy").running_and_healthy


def test_start_period_label_overrides_the_healthcheck() -> None:
    attrs = {
        **INSPECT,
        "Config": {
            **INSPECT["Config"],
            "Labels": {**INSPECT["Config"]["Labels"], "appliance.watchdog.start-period": "1200"},
        },
    }
    assert state_from_inspect(attrs).start_period_s == 1200


def test_unwatched_label() -> None:
    attrs = {**INSPECT, "Config": {"Labels": {"appliance.watchdog": "false"}}}
    assert not state_from_inspect(attrs).watched


def test_parse_time_without_fraction() -> None:
    assert parse_time("2026-11-23T11:30:01Z") == datetime(2026, 11, 23, 11, 30, 1, tzinfo=UTC)


def test_health_event() -> None:
    raw = {
        "Type": "container",
        "Action": "health_status: unhealthy",
        "timeNano": 1_700_000_000_000_000_000,
        "Actor": {"ID": "abc", "Attributes": {"com.docker.compose.service": "serve", "name": "x"}},
    }
    event = event_from_raw(raw)
    assert event is not None and event.kind == "unhealthy" and event.service == "serve"
    assert event_from_raw({"Type": "network", "Action": "connect"}) is None

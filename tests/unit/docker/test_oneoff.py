"""`docker compose run` containers (one-offs, e.g. up's model-cache chown) are invisible to the watchdog: the
one Docker door drops them from the project's containers and from its events."""

from __future__ import annotations

from types import SimpleNamespace

from appliance.docker.engine import DockerEngine, EventStream

SERVICE = {"com.docker.compose.project": "appliance", "com.docker.compose.service": "serve"}
ONEOFF = {**SERVICE, "com.docker.compose.oneoff": "True"}


def _raw(action: str, cid: str, labels: dict[str, str]) -> dict:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": labels}, "time": 1}


def test_events_of_one_offs_are_dropped() -> None:
    raw = [
        _raw("die", "oneoff", ONEOFF),
        _raw("die", "service", SERVICE),
        _raw("start", "oneoff2", {**SERVICE, "com.docker.compose.oneoff": "true"}),
    ]
    assert [e.container_id for e in EventStream(iter(raw))] == ["service"]


def test_one_offs_are_not_project_containers() -> None:
    def attrs(cid: str, labels: dict[str, str]) -> SimpleNamespace:
        return SimpleNamespace(
            attrs={"Id": cid, "Name": f"/{cid}", "State": {"Status": "exited"}, "Config": {"Labels": labels}}
        )

    listed = [attrs("service", SERVICE), attrs("oneoff", ONEOFF)]
    engine = DockerEngine.__new__(DockerEngine)  # no connection: the SDK client below stands in for it
    engine._client = SimpleNamespace(containers=SimpleNamespace(list=lambda **_: listed))
    assert [c.id for c in engine.project_containers("appliance")] == ["service"]

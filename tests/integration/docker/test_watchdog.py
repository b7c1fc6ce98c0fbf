"""The watchdog against a real Docker Engine: kill, unhealthy, crash loop, operator stop, its own restart."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta

import docker
import pytest

from appliance.docker.compose import ComposeCli
from appliance.docker.engine import DockerEngine
from appliance.docker.model import ContainerState
from tests.integration.docker.conftest import metric, wait_until
from tests.integration.docker.harness import Engine


def container(api: DockerEngine, project: str, service: str) -> ContainerState:
    return next(c for c in api.project_containers(project) if c.service == service)


def events_since(engine: Engine, cid: str, since: datetime, action: str) -> list[dict]:
    client = docker.DockerClient(base_url=engine.url)
    try:
        # the API's 'since' has whole-second precision: ask from a second earlier, filter on timeNano
        events = client.events(
            since=since - timedelta(seconds=1),
            until=datetime.now(tz=UTC),
            decode=True,
            filters={"type": "container", "container": cid, "event": action},
        )
        return [event for event in events if event["timeNano"] >= since.timestamp() * 1e9]
    finally:
        client.close()


def starts_since(engine: Engine, cid: str, since: datetime) -> int:
    return len(events_since(engine, cid, since, "start"))


def test_killed_container_is_restarted_within_3_s(compose: ComposeCli, docker_api: DockerEngine, supervisor) -> None:
    compose.up("web", wait=True)
    sup = supervisor().start()
    web = container(docker_api, compose.project, "web")
    killed = time.monotonic()
    docker_api.kill(web.id)
    wait_until(
        lambda: (
            container(docker_api, compose.project, "web").status == "running"
            and container(docker_api, compose.project, "web").started_at != web.started_at
        ),
        10,
        "web running again",
    )
    assert time.monotonic() - killed <= 3.0
    wait_until(
        lambda: metric(sup.metrics(), "appliance_supervisor_restarts_total", service="web") == 1, 5, "restart metric"
    )
    # the supervisor's own doctor run: the engine answers, and every service is running and healthy again
    wait_until(lambda: metric(sup.metrics(), "appliance_supervisor_check_ok", check="docker-engine") == 1, 10, "checks")
    assert metric(sup.metrics(), "appliance_supervisor_check_ok", check="clock") == 1
    assert sup.stop() == 0  # graceful on SIGTERM
    assert '"supervisor stopped"' in sup.output() or "supervisor stopped" in sup.output()


def test_unhealthy_container_is_restarted_only_after_its_start_period(
    compose: ComposeCli, docker_api: DockerEngine, supervisor, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SICK_START_PERIOD", "5")
    compose.up("web", "sick", wait=True)
    sup = supervisor().start()
    sick = container(docker_api, compose.project, "sick")
    assert sick.start_period_s == 5.0
    client = docker.DockerClient(base_url=engine.url)
    client.containers.get(sick.id).exec_run(["touch", "/run/bad"])
    client.close()
    wait_until(
        lambda: metric(sup.metrics(), "appliance_supervisor_restarts_total", service="sick") == 1, 20, "sick restarted"
    )
    after = container(docker_api, compose.project, "sick")
    assert after.started_at is not None and sick.started_at is not None
    assert (after.started_at - sick.started_at).total_seconds() >= 5.0  # not inside the start period
    # tmpfs /run is fresh after the restart: the container turns healthy again and stays up
    wait_until(lambda: container(docker_api, compose.project, "sick").health == "healthy", 10, "sick healthy")


def test_crash_loop_backs_off_then_gives_up_without_flapping(
    compose: ComposeCli, docker_api: DockerEngine, supervisor, engine: Engine
) -> None:
    compose.up("web", wait=True)
    sup = supervisor(WATCHDOG_RESTART_BUDGET="3", WATCHDOG_BACKOFF_BASE_SECONDS="0.3").start()
    compose.run("--profile", "crash", "up", "-d", "crashy")
    wait_until(
        lambda: metric(sup.metrics(), "appliance_supervisor_giveups_total", service="crashy") == 1,
        40,
        "the watchdog to give up on crashy",
    )
    text = sup.metrics()
    assert (
        metric(text, "appliance_supervisor_restarts_total", service="crashy") == 3
    )  # budget 3: 3 restarts, then give up
    assert metric(text, "appliance_supervisor_service_healthy", service="crashy") == 0
    crashy = container(docker_api, compose.project, "crashy")
    settled = datetime.now(tz=UTC)
    time.sleep(3)  # crashy exits after 1 s: a flapping watchdog would have started it again by now
    assert starts_since(engine, crashy.id, settled) == 0
    assert container(docker_api, compose.project, "crashy").status == "exited"
    assert "watchdog gave up on crashy" in sup.output()
    state = json.loads((sup.workdir / "state.json").read_text())
    assert state["services"]["crashy"]["gave_up"] is True
    restarts = state["services"]["crashy"]["restarts"]
    gaps = [b - a for a, b in zip(restarts, restarts[1:], strict=False)]
    # each gap is the container's ~1 s run plus the backoff (0.6 s, then 1.2 s, each x0.8-1 jitter)
    assert gaps[1] - gaps[0] >= 0.2, gaps


def test_compose_stop_is_left_alone_and_compose_start_is_watched_again(
    compose: ComposeCli, docker_api: DockerEngine, supervisor, engine: Engine
) -> None:
    compose.up("web", wait=True)
    sup = supervisor().start()
    web = container(docker_api, compose.project, "web")
    stopped = datetime.now(tz=UTC)
    compose.stop("web")
    time.sleep(2)  # a restart after the settle time (0.3 s) would have happened by now
    assert container(docker_api, compose.project, "web").status == "exited"
    assert starts_since(engine, web.id, stopped) == 0
    assert metric(sup.metrics(), "appliance_supervisor_restarts_total", service="web") in (None, 0.0)
    # what tells the watchdog to wait for the 'stop' event: Docker's 'kill' before the 'die' names the signal
    assert [e["Actor"]["Attributes"].get("signal") for e in events_since(engine, web.id, stopped, "kill")] == ["15"]
    compose.start("web")
    wait_until(lambda: container(docker_api, compose.project, "web").status == "running", 10, "web started")
    time.sleep(0.5)
    docker_api.kill(container(docker_api, compose.project, "web").id)
    wait_until(
        lambda: metric(sup.metrics(), "appliance_supervisor_restarts_total", service="web") == 1,
        10,
        "web restarted after compose start",
    )


def test_supervisor_restarted_mid_way_resumes_without_duplicate_restarts(
    compose: ComposeCli, docker_api: DockerEngine, supervisor, engine: Engine
) -> None:
    compose.up("web", wait=True)
    settings = {"WATCHDOG_BACKOFF_BASE_SECONDS": "3"}
    first = supervisor(**settings).start()
    web = container(docker_api, compose.project, "web")
    docker_api.kill(web.id)  # restart 1: immediate
    wait_until(
        lambda: metric(first.metrics(), "appliance_supervisor_restarts_total", service="web") == 1, 10, "restart 1"
    )
    time.sleep(0.5)
    killed = datetime.now(tz=UTC)
    docker_api.kill(web.id)  # restart 2: after a backoff of ~6 s (3 * 2 ** ~1)
    state_file = first.workdir / "state.json"
    wait_until(lambda: json.loads(state_file.read_text())["services"]["web"]["pending"], 10, "the pending restart")
    first.stop(signal.SIGKILL)  # the supervisor dies before the restart is due
    second = supervisor(**settings)
    second.workdir.joinpath("state.json").write_text(state_file.read_text())  # the same state volume
    second.start()
    wait_until(lambda: container(docker_api, compose.project, "web").status == "running", 20, "web running again")
    time.sleep(2)
    assert starts_since(engine, web.id, killed) == 1
    assert metric(second.metrics(), "appliance_supervisor_restarts_total", service="web") == 1
    assert json.loads(second.workdir.joinpath("state.json").read_text())["services"]["web"]["pending"] is None


def test_compose_up_three_times_gives_the_same_state(compose: ComposeCli, docker_api: DockerEngine) -> None:
    states = []
    for _ in range(3):
        compose.up("web", "sick", wait=True)
        states.append(sorted((c.service, c.id, c.status) for c in docker_api.project_containers(compose.project)))
    assert states[0] == states[1] == states[2]
    assert [s[0] for s in states[0]] == ["sick", "web"]

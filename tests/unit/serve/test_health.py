import asyncio

import pytest

from appliance.serve.health import FAILED, LOADING, READY, ReadyCache, model_state, with_pii


def test_model_state() -> None:
    assert model_state("UPDATING", 0, False) == LOADING
    assert model_state(None, 0, False) == LOADING
    assert model_state("HEALTHY", 1, False) == READY
    assert model_state("UPSCALING", 1, True) == READY
    # its only replica gone (with its node) and the new one waiting for room: not ready, whatever Serve calls it
    assert model_state("HEALTHY", 0, True, starting=1) == LOADING
    assert model_state("UPSCALING", 0, True, starting=1) == LOADING
    assert model_state("HEALTHY", 0, True) == READY  # scaled to zero, nothing starting: a request starts one
    assert model_state("UNHEALTHY", 0, True, starting=1) == FAILED
    assert model_state("UPDATING", 1, True) == READY, "a rolling update keeps a ready model ready"
    assert model_state("UPDATING", 0, True) == LOADING
    assert model_state("DEPLOY_FAILED", 0, False) == FAILED
    assert model_state("UNHEALTHY", 1, True) == FAILED
    # a model with several replicas, one replaced: still ready while another runs
    assert model_state("UNHEALTHY", 1, True, starting=1, several=True) == READY
    assert model_state("UNHEALTHY", 0, True, starting=2, several=True) == FAILED
    assert model_state("UNHEALTHY", 1, False, several=True) == FAILED


def test_ready_cache_never_queues_a_probe_behind_a_running_one() -> None:
    calls = []
    release = asyncio.Event()

    async def probe():
        calls.append(len(calls))
        if len(calls) > 1:
            await release.wait()
        return {"m": {"ready": True, "n": len(calls)}}

    async def scenario():
        cache = ReadyCache(probe, ttl=0.0)
        first = await cache.get()  # no answer yet: waits for the first probe
        second = await asyncio.wait_for(cache.get(), 1)  # stale: starts a refresh, answers at once
        third = await asyncio.wait_for(cache.get(), 1)  # refresh still running: no second one started
        release.set()
        await asyncio.sleep(0)
        return first, second, third, len(calls)

    first, second, third, count = asyncio.run(scenario())
    assert first["m"]["n"] == 1 and second["m"]["n"] == 1 and third["m"]["n"] == 1
    assert count == 2


def test_ready_cache_serves_fresh_results_without_probing() -> None:
    count = 0

    async def probe():
        nonlocal count
        count += 1
        return {"m": {"ready": True}}

    async def scenario():
        cache = ReadyCache(probe, ttl=60)
        for _ in range(5):
            await cache.get()

    asyncio.run(scenario())
    assert count == 1


def test_a_cleared_cache_waits_for_a_probe_of_the_new_set_of_models() -> None:
    models = ["a"]
    slow = asyncio.Event()
    slow_probe = [False]

    async def probe():
        seen = list(models)  # the set when the probe starts, as the ingress's probe gathers its models
        if len(models) == 1 and slow_probe[0]:
            await slow.wait()
        return {m: {"ready": True} for m in seen}

    async def scenario():
        cache = ReadyCache(probe, ttl=60)
        first = await cache.get()
        slow_probe[0] = True
        cache.invalidate()
        stale = await cache.get()  # invalidated: the earlier answer now; a probe of {a} runs (slowly)
        await asyncio.sleep(0)
        models.append("added")
        cache.clear()
        fresh = await asyncio.wait_for(cache.get(), 1)  # cleared: a new probe, of the new set
        slow.set()
        await asyncio.sleep(0.01)  # the old probe finishes: its answer must not replace the new one
        return first, stale, fresh, await cache.get()

    first, stale, fresh, after = asyncio.run(scenario())
    assert set(first) == set(stale) == {"a"} and set(fresh) == set(after) == {"a", "added"}


def _watch_with(alive: dict[str, object], states: dict[str, str], changes: list[str]):
    from appliance.serve.health import EngineWatch

    async def check(mid: str) -> None:
        what = alive[mid]
        if what == "hang":
            await asyncio.sleep(10)
        elif what is not True:
            raise RuntimeError("EngineCore encountered an issue")

    async def read_states():
        return {mid: {"state": state} for mid, state in states.items()}

    checks = {mid: (lambda m=mid: check(m)) for mid in alive}
    return EngineWatch(checks, read_states, timeout=0.05, on_change=lambda: changes.append("changed"))


def test_engine_watch_flips_on_a_dead_engine_and_back_when_it_answers() -> None:
    alive: dict[str, object] = {"a": True, "b": True}
    states = {"a": READY, "b": READY}
    changes: list[str] = []
    watch = _watch_with(alive, states, changes)

    async def scenario():
        await watch.sweep()
        assert watch.down_models() == set() and changes == []
        alive["a"] = False  # the engine process died: check_health raises
        await watch.sweep()
        assert watch.down("a") and not watch.down("b") and changes == ["changed"]
        alive["a"] = "hang"  # its replica is being replaced: no answer is not an all-clear
        states["a"] = LOADING
        await watch.sweep()
        assert watch.down("a")
        alive["a"] = True  # the new replica answers, Serve calls it ready
        await watch.sweep()
        assert watch.down("a")  # still loading in Serve's view
        states["a"] = READY
        await watch.sweep()
        assert not watch.down("a")

    asyncio.run(scenario())
    assert len(changes) >= 3


def test_engine_watch_reports_serving_from_the_first_time_a_model_served() -> None:
    from appliance.serve.health import EngineWatch

    states = {"a": LOADING, "b": READY}

    async def read_states():
        return {mid: {"state": state} for mid, state in states.items()}

    async def alive() -> None:
        return None

    heard: dict[str, bool] = {}
    watch = EngineWatch(
        {"a": alive, "b": alive}, read_states, timeout=0.05, on_serving=lambda m, up: heard.__setitem__(m, up)
    )

    async def scenario():
        assert not watch.seen_ready("a") and not watch.seen_ready("b")  # no round yet: nothing known
        await watch.sweep()
        assert heard == {"b": True}  # "a" is still loading after its start: nothing said about it yet
        assert watch.seen_ready("b") and not watch.seen_ready("a")
        heard.clear()
        await watch.sweep()
        assert heard == {"b": True}  # said again every round (Ray drops a gauge not set for ~30 s)
        states["a"] = READY
        states["b"] = LOADING  # b's replica went with its node; Serve starts another
        await watch.sweep()
        assert heard == {"a": True, "b": False}
        assert watch.seen_ready("b") and watch.down("b")  # seen ready once: the watch's verdicts decide now
        states["b"] = READY
        await watch.sweep()
        assert heard == {"a": True, "b": True}

    asyncio.run(scenario())


def test_engine_watch_takes_a_failed_request_at_its_word_and_ignores_unknown_models() -> None:
    changes: list[str] = []
    watch = _watch_with({"a": True}, {"a": READY}, changes)
    watch.mark_down("a")
    watch.mark_down("a")
    watch.mark_down("not-configured")
    assert watch.down_models() == {"a"} and changes == ["changed"]
    assert asyncio.run(watch.check("a")) is True
    assert not watch.down("a")


def test_engine_watch_a_slow_check_keeps_the_last_verdict() -> None:
    watch = _watch_with({"a": "hang"}, {"a": READY}, [])
    assert asyncio.run(watch.check("a")) is None
    assert not watch.down("a")


def test_ready_cache_keeps_a_ready_answer_long_and_a_not_ready_one_short() -> None:
    answers = [{"m": {"ready": False}}, {"m": {"ready": True}}, {"m": {"ready": True}}]
    count = 0

    async def probe():
        nonlocal count
        count += 1
        return answers[count - 1]

    async def scenario():
        cache = ReadyCache(probe, ttl=60, retry_ttl=0.05)
        assert (await cache.get())["m"]["ready"] is False
        await asyncio.sleep(0.1)  # past retry_ttl: a not-ready answer is asked again
        assert (await cache.get())["m"]["ready"] is False  # the stale answer now, the refresh in the background
        await asyncio.sleep(0.01)
        assert (await cache.get())["m"]["ready"] is True
        await asyncio.sleep(0.1)  # a ready answer is kept for ttl
        assert (await cache.get())["m"]["ready"] is True

    asyncio.run(scenario())
    assert count == 2


def test_ready_cache_never_keeps_a_not_ready_answer_longer_than_ttl() -> None:
    count = 0

    async def probe():
        nonlocal count
        count += 1
        return {}  # no model answered: not ready

    async def scenario():
        cache = ReadyCache(probe, ttl=0.01, retry_ttl=60)
        await cache.get()
        await asyncio.sleep(0.05)
        await cache.get()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert count == 2


def test_ready_cache_invalidate_starts_a_new_probe() -> None:
    count = 0

    async def probe():
        nonlocal count
        count += 1
        return {"m": {"ready": True}}

    async def scenario():
        cache = ReadyCache(probe, ttl=60)
        await cache.get()
        cache.invalidate()
        await cache.get()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert count == 2


@pytest.mark.parametrize(
    ("models", "pii", "expected"),
    [
        ("ready", None, "ready"),  # masking off: the models alone
        ("ready", "ready", "ready"),
        ("ready", "loading", "loading"),  # every model ready, the PII service not: requests would get 503
        ("ready", "failed", "failed"),  # the PII service could not start (e.g. its spaCy model is missing)
        ("loading", "ready", "loading"),
        ("failed", "ready", "failed"),
    ],
)
def test_readiness_covers_the_pii_service(models: str, pii: str | None, expected: str) -> None:
    assert with_pii(models, pii) == expected


def test_up_says_when_the_pii_service_is_what_it_waits_for() -> None:
    from appliance.commands.up import _describe

    body = {"status": "loading", "models_ready": 2, "models_total": 2, "pii": "loading"}
    assert _describe(body) == "2 of 2 model(s) ready, PII service loading (loading)"
    assert _describe({"status": "ready", "models_ready": 1, "models_total": 1}) == "1 of 1 model(s) ready (ready)"


def test_deployment_statuses_reads_the_controllers_details() -> None:
    from enum import Enum

    from appliance.serve.health import deployment_statuses

    class State(Enum):  # Serve's schema enums (a JSON-shaped dict holds their values instead)
        RUNNING = "RUNNING"
        STARTING = "STARTING"

    details = {
        "applications": {
            "appliance": {
                "deployments": {
                    "LLMServer:tiny": {
                        "status": "HEALTHY",
                        "message": "",
                        "replicas": [{"state": State.RUNNING}, {"state": "RUNNING"}, {"state": State.STARTING}],
                    },
                    "PIIService": {"status": "UPDATING", "message": "loading spaCy", "replicas": []},
                    "Unset": {},
                }
            },
            "other": {"deployments": {"X": {"status": "HEALTHY", "replicas": [{"state": "RUNNING"}]}}},
        }
    }
    assert deployment_statuses(details, "appliance") == {
        "LLMServer:tiny": ("HEALTHY", {"RUNNING": 2, "STARTING": 1}, ""),
        "PIIService": ("UPDATING", {}, "loading spaCy"),
        "Unset": ("None", {}, ""),
    }
    assert deployment_statuses(details, "missing") == {}
    assert deployment_statuses({}, "appliance") == {}

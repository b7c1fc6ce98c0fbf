import asyncio

from appliance.serve.health import FAILED, LOADING, READY, ReadyCache, model_state


def test_model_state() -> None:
    assert model_state("UPDATING", 0, False) == LOADING
    assert model_state(None, 0, False) == LOADING
    assert model_state("HEALTHY", 1, False) == READY
    assert model_state("UPSCALING", 1, True) == READY
    assert model_state("UPDATING", 1, True) == READY, "a rolling update keeps a ready model ready"
    assert model_state("UPDATING", 0, True) == LOADING
    assert model_state("DEPLOY_FAILED", 0, False) == FAILED
    assert model_state("UNHEALTHY", 1, True) == FAILED


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

"""Zero false alerts over a soak (#17): a freshly started, healthy stack, light traffic, no alert for 15 minutes.

Not part of ``make test`` (its file name is not ``test_*``: a quarter of an hour of one stack is more than the CI
budget gives one check); ``make soak`` runs it (``SOAK_MINUTES``, default 15). The e2e-docker tier asserts the
same on the settled stack (test_alerts.py); this watches it for the whole time. Every 30 s it asks Prometheus
(through nginx, as an operator would) for ``ALERTS`` — firing and pending both count — and sends one short chat
completion every 10 s in between, so the request-path rules see traffic, not only an idle stack.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.e2e_docker.stack import DockerStack, stack_secret
from tests.e2e_docker.test_alerts import EVALUATION_INTERVAL_S, JOBS, SETTLE_TIMEOUT_S, _query

SAMPLE_S = 30
CHAT_EVERY_S = 10
MINUTES = float(os.environ.get("SOAK_MINUTES", "15"))


def _chat(stack: DockerStack) -> int:
    try:
        response = stack.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {stack.key}"},
            json={"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
            timeout=60,
        )
    except httpx.HTTPError:
        return 0
    return response.status_code


@pytest.mark.timeout(int(MINUTES * 60) + 1200)  # the soak, and the stack's start before it
def test_a_fresh_healthy_stack_fires_no_alert_for_the_whole_soak(docker_stack: DockerStack) -> None:
    minutes = MINUTES
    auth = (stack_secret(docker_stack, "DASHBOARD_USER"), stack_secret(docker_stack, "DASHBOARD_PASSWORD"))
    started = time.monotonic()
    while True:
        up = {r["metric"]["job"]: r["value"][1] for r in _query(docker_stack, auth, "up")}
        if JOBS <= set(up) and all(up[job] == "1" for job in JOBS):
            break
        assert time.monotonic() - started < SETTLE_TIMEOUT_S, f"targets not all up: {up}"
        time.sleep(3)
    # as test_alerts.py: the rules evaluated twice on what the settled targets say (a model's ModelNotReady may
    # still be pending from the scrape taken while it loaded, before `make up` saw it ready)
    time.sleep(2 * EVALUATION_INTERVAL_S + 5)
    print(f"\nsettled {time.monotonic() - started:.0f} s after `make up` returned; soaking {minutes:g} min")
    soak_started = time.monotonic()
    end = soak_started + minutes * 60
    seen: dict[str, float] = {}  # alert (name, state, labels) -> first seen, s into the soak
    statuses: dict[int, int] = {}
    samples = 0
    next_sample = soak_started
    while time.monotonic() < end:
        if time.monotonic() >= next_sample:
            samples += 1
            for alert in _query(docker_stack, auth, "ALERTS"):
                labels = alert["metric"]
                key = f"{labels['alertname']}({labels.get('alertstate')}) " + ",".join(
                    f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "alertstate", "__name__")
                )
                if key not in seen:
                    seen[key] = time.monotonic() - soak_started
                    print(f"  new alert at {seen[key]:.0f} s: {key}")
            elapsed = time.monotonic() - soak_started
            print(f"{elapsed / 60:5.1f} min  samples {samples:3d}  alerts seen {len(seen)}  requests {statuses}")
            next_sample += SAMPLE_S
        status = _chat(docker_stack)
        statuses[status] = statuses.get(status, 0) + 1
        time.sleep(CHAT_EVERY_S)
    print(f"soak: {minutes:g} min, {samples} ALERTS samples, requests by status {statuses}")
    for key, at in sorted(seen.items(), key=lambda item: item[1]):
        print(f"  {at:6.0f} s  {key}")
    assert seen == {}, seen
    assert set(statuses) == {200}, statuses

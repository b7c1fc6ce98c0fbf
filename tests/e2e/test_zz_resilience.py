"""An engine crash as clients see it (#17): SIGKILL the vLLM engine process of one model, under traffic.

Clients may see successes or 503 with Retry-After in the OpenAI shape, never a 500 or a dropped stream;
/health/ready flips within ~2 s and comes back once the replica Serve starts again is ready. The figures
(crash → not ready, crash → ready again, statuses seen) are printed. The file's name sorts last: the test
takes one model down for about a minute, and waits until it is back before the session goes on or ends.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import httpx
import psutil

from tests.e2e.conftest import NO_EOS, Stack

VICTIM, BYSTANDER = "tiny-a", "tiny-b"
RECOVERY_TIMEOUT = 420


def _engine_process(model: str) -> psutil.Process:
    """The vLLM EngineCore process (title ``VLLM::EngineCore``) under the Serve replica of ``model`` (the replica
    actor's title names its deployment, which ray.serve.llm names after the model id)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if "EngineCore" in " ".join(proc.info["cmdline"] or []) and any(
                    "ServeReplica" in " ".join(p.cmdline()) and model in " ".join(p.cmdline())
                    for p in proc.parents()):  # fmt: skip
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert len(found) == 1, f"expected one EngineCore under {model}'s replica, found {[p.pid for p in found]}"
    return found[0]


class Traffic(threading.Thread):
    """Requests to one model, one after another, streamed and not, each outcome recorded with its time."""

    def __init__(self, stack: Stack, model: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stack, self.model, self.stop = stack, model, stop
        self.outcomes: list[tuple[float, str]] = []  # (monotonic time, "200" / "503" / "stream-error-event" / …)
        self.problems: list[str] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.stack.keys['admin']}"}
        with httpx.Client(base_url=self.stack.url, headers=headers, timeout=60) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {"model": self.model, "prompt": "resilience", "max_tokens": 48, "stream": n % 2 == 0, **NO_EOS}
                try:
                    self.outcomes.append((time.monotonic(), self._one(client, body)))
                except httpx.HTTPError as err:  # a dropped connection: what must not happen
                    self.outcomes.append((time.monotonic(), f"transport:{type(err).__name__}"))
                time.sleep(0.05)

    def _one(self, client: httpx.Client, body: dict) -> str:
        if not body["stream"]:
            response = client.post("/v1/completions", json=body)
            self._check_refusal(response.status_code, response.headers, response.text)
            return str(response.status_code)
        with client.stream("POST", "/v1/completions", json=body) as response:
            text = response.read().decode() if response.status_code != 200 else ""
            if response.status_code != 200:
                self._check_refusal(response.status_code, response.headers, text)
                return str(response.status_code)
            events = "".join(response.iter_text()).split("\n\n")
        data = [e.strip() for e in events if e.strip()]
        if not data or data[-1] != "data: [DONE]":
            self.problems.append(f"stream ended without [DONE]: {data[-2:]}")
            return "stream-cut"
        errors = [json.loads(e[5:])["error"] for e in data if e.startswith("data:") and '"error"' in e[:20]]
        if errors:
            if errors[-1].get("type") != "service_unavailable_error":
                self.problems.append(f"stream error event not a 503: {errors[-1]}")
            return "stream-error-event"
        return "200"

    def _check_refusal(self, status: int, headers: httpx.Headers, text: str) -> None:
        if status == 200:
            return
        if status != 503:
            self.problems.append(f"{status}: {text[:300]}")
            return
        error = json.loads(text)["error"]
        if "retry-after" not in headers or error.get("type") != "service_unavailable_error":
            self.problems.append(f"503 without Retry-After or OpenAI type: {dict(headers)} {text[:300]}")


def test_engine_crash_clients_see_503_with_retry_after_and_readiness_flips_at_once(stack: Stack) -> None:
    assert stack.get("/health/ready").status_code == 200
    engine = _engine_process(VICTIM)

    stop = threading.Event()
    victim, bystander = Traffic(stack, VICTIM, stop), Traffic(stack, BYSTANDER, stop)
    victim.start()
    bystander.start()
    time.sleep(2)  # traffic flowing before the crash

    crashed = time.monotonic()
    os.kill(engine.pid, signal.SIGKILL)
    not_ready_at = ready_again_at = None
    ready_seen: list[tuple[float, int]] = []
    try:
        while time.monotonic() - crashed < RECOVERY_TIMEOUT:
            status = stack.get("/health/ready").status_code
            now = time.monotonic()
            ready_seen.append((now - crashed, status))
            if not_ready_at is None and status == 503:
                not_ready_at = now
            if not_ready_at is not None and status == 200:
                ready_again_at = now
                break
            time.sleep(0.1)
        time.sleep(3)  # a few requests after the return
    finally:
        stop.set()
        victim.join(90)
        bystander.join(90)

    after = [what for t, what in victim.outcomes if t > crashed]
    statuses, bystander_statuses = Counter(after), Counter(what for t, what in bystander.outcomes if t > crashed)
    flip = None if not_ready_at is None else not_ready_at - crashed
    back = None if ready_again_at is None else ready_again_at - crashed
    print(f"\nengine crash of {VICTIM}: /health/ready 503 after {flip and round(flip, 2)} s, ready again after "
          f"{back and round(back, 1)} s; {VICTIM} outcomes {dict(statuses)}; {BYSTANDER} {dict(bystander_statuses)}")
    assert flip is not None and flip <= 2.5, ready_seen[:40]
    assert back is not None, f"{VICTIM} not ready again within {RECOVERY_TIMEOUT} s"
    assert not victim.problems, victim.problems[:10]
    assert set(statuses) <= {"200", "503", "stream-error-event"}, statuses
    assert statuses["503"] > 0, "no request met the outage"
    assert after[-1] == "200", f"{VICTIM} does not answer after readiness came back: {after[-5:]}"
    assert not bystander.problems, bystander.problems[:10]
    assert set(bystander_statuses) <= {"200"}, bystander_statuses
    # Serve replaced the replica: another engine process now serves the model
    assert not psutil.pid_exists(engine.pid) or engine.status() == psutil.STATUS_ZOMBIE

"""For outage tests: the engine process of a model, and steady client traffic: one model's completions, one after another, streamed and not.

Each outcome is recorded with its time: ``"200"``, another status as text, ``"stream-error-event"`` (a stream that
ended with an OpenAI-shaped error event and ``[DONE]``), ``"stream-cut"`` (a stream that ended without ``[DONE]``, or any answer whose body broke off after its headers)
or ``"transport:<Error>"`` (no HTTP answer at all). Refusals must be 503 with ``Retry-After`` in the OpenAI shape;
anything else lands in ``problems``. Like the official OpenAI clients, it waits what ``Retry-After`` says (at most
``MAX_RETRY_AFTER_S``) before its next request: a client hammering through an outage meets the per-key rate
limit (429), which is the limiter doing its job, not the outage. The request ids of completed (200) requests are
kept for audit checks.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import psutil

MAX_RETRY_AFTER_S = 5.0
NO_EOS = {"ignore_eos": True}  # the tiny test models are random: without this they may stop early at </s>


class Traffic(threading.Thread):
    def __init__(
        self,
        base_url: str,
        key: str,
        model: str,
        stop: threading.Event,
        *,
        verify: ssl.SSLContext | bool = True,
        max_tokens: int = 48,
        pause_s: float = 0.05,
    ) -> None:
        super().__init__(daemon=True)
        self.base_url, self.key, self.model, self.stop, self.verify = base_url, key, model, stop, verify
        self.max_tokens, self.pause_s = max_tokens, pause_s
        self.outcomes: list[tuple[float, str]] = []  # (monotonic time, outcome)
        self.problems: list[str] = []
        self.completed_ids: list[str] = []  # X-Request-ID of every 200
        self._retry_after = 0.0  # what the last refusal asked the client to wait

    def between(self, start: float, end: float | None = None) -> list[str]:
        return [what for t, what in self.outcomes if t >= start and (end is None or t <= end)]

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60, verify=self.verify) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {
                    "model": self.model,
                    "prompt": "resilience",
                    "max_tokens": self.max_tokens,
                    "stream": n % 2 == 0,
                    **NO_EOS,
                }
                try:
                    self.outcomes.append((time.monotonic(), self._one(client, body)))
                except httpx.HTTPError as err:  # no HTTP answer: a dropped or refused connection
                    self.outcomes.append((time.monotonic(), f"transport:{type(err).__name__}"))
                wait, self._retry_after = max(self.pause_s, self._retry_after), 0.0
                self.stop.wait(wait)

    def _one(self, client: httpx.Client, body: dict) -> str:
        if not body["stream"]:
            with client.stream("POST", "/v1/completions", json=body) as response:
                try:
                    text = response.read().decode()
                except (httpx.RemoteProtocolError, httpx.ReadError) as err:  # the answer began, then broke
                    self.problems.append(
                        f"stream ended without [DONE]: the body broke after the headers ({type(err).__name__})"
                    )
                    return "stream-cut"
            self._check_refusal(response.status_code, response.headers, text)
            if response.status_code == 200:
                self.completed_ids.append(response.headers.get("x-request-id", ""))
            return str(response.status_code)
        with client.stream("POST", "/v1/completions", json=body) as response:
            text = response.read().decode() if response.status_code != 200 else ""
            if response.status_code != 200:
                self._check_refusal(response.status_code, response.headers, text)
                return str(response.status_code)
            request_id = response.headers.get("x-request-id", "")
            try:
                events = "".join(response.iter_text()).split("\n\n")
            except (httpx.RemoteProtocolError, httpx.ReadError) as err:  # the body stopped mid-way: a cut stream
                self.problems.append(f"stream ended without [DONE]: the connection broke ({type(err).__name__})")
                return "stream-cut"

        data = [e.strip() for e in events if e.strip()]
        if not data or data[-1] != "data: [DONE]":
            self.problems.append(f"stream ended without [DONE]: {data[-2:]}")
            return "stream-cut"
        errors = [json.loads(e[5:])["error"] for e in data if e.startswith("data:") and '"error"' in e[:20]]
        if errors:
            if errors[-1].get("type") != "service_unavailable_error":
                self.problems.append(f"stream error event not a 503: {errors[-1]}")
            return "stream-error-event"
        self.completed_ids.append(request_id)
        return "200"

    def _check_refusal(self, status: int, headers: httpx.Headers, text: str) -> None:
        if status == 200:
            return
        if status != 503:
            self.problems.append(f"{status}: {text[:300]}")
            return
        try:
            error = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            self.problems.append(f"503 not in the OpenAI shape: {text[:300]}")
            return
        if "retry-after" not in headers or error.get("type") != "service_unavailable_error":
            self.problems.append(f"503 without Retry-After or OpenAI type: {dict(headers)} {text[:300]}")
            return
        try:
            self._retry_after = min(float(headers["retry-after"]), MAX_RETRY_AFTER_S)
        except ValueError:
            self.problems.append(f"Retry-After is not a number of seconds: {headers['retry-after']!r}")


def engine_process(model: str, *, pid_namespace_of: int | None = None) -> psutil.Process:
    """The vLLM EngineCore process (title ``VLLM::EngineCore``) under the Serve replica of ``model`` (the replica
    actor's title names its deployment, which ray.serve.llm names after the model id). ``pid_namespace_of``: a
    process of the PID namespace to look in (a container's main process); default: this one."""
    found = engine_processes(model, pid_namespace_of=pid_namespace_of)
    assert len(found) == 1, f"expected one EngineCore under {model}'s replica, found {[p.pid for p in found]}"
    return found[0]


def processes_in_pid_namespace(pid_namespace_of: int | None = None) -> Iterator[psutil.Process]:
    """The processes of this PID namespace (or of ``pid_namespace_of``'s): the test's Ray cluster, not the
    containers of the e2e-docker tier, which ``make test`` runs at the same time (scripts/ci/test_lanes.sh; each
    container has a PID namespace of its own, and processes with the same titles) — or one container's."""
    namespace = os.readlink(f"/proc/{pid_namespace_of or 'self'}/ns/pid")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/pid") == namespace:
                yield proc
        except (OSError, psutil.Error):
            continue


def engine_processes(model: str, *, pid_namespace_of: int | None = None) -> list[psutil.Process]:
    """The EngineCore processes under every Serve replica of ``model`` (in one PID namespace: see processes_in_pid_namespace)."""
    named = re.compile(rf"(?<![\w-]){re.escape(model)}(?![\w-])")  # 'tiny' is not 'tiny-a'
    found = []
    for proc in processes_in_pid_namespace(pid_namespace_of):
        try:
            if "EngineCore" in " ".join(proc.info["cmdline"] or []) and any(
                "ServeReplica" in " ".join(p.cmdline()) and named.search(" ".join(p.cmdline())) for p in proc.parents()
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found

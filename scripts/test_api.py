#!/usr/bin/env python3
"""Check a running appliance the way a user would, with the official OpenAI client; print a pass/fail table.

    python scripts/test_api.py --url https://llm.example.com --key sk-...
    python scripts/test_api.py --url https://127.0.0.1 --key sk-... --cacert data/certs/live/localhost/fullchain.pem
    python scripts/test_api.py --url http://127.0.0.1:8000 --key sk-... --model qwen2.5-0.5b-instruct --insecure

Checks: the health probes, /v1/models, a chat completion, a streamed chat completion (first event before
the last), a text completion, and the error shapes for a wrong key, an unknown model and a malformed body.
Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from openai import APIStatusError, OpenAI
from rich.console import Console
from rich.table import Table


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    seconds: float


def _error_shape(response: httpx.Response, status: int) -> str:
    error = response.json().get("error", {})
    assert response.status_code == status, f"status {response.status_code}, expected {status}"
    assert {"message", "type", "code"} <= set(error), f"not the OpenAI error shape: {response.text[:200]}"
    return f"{status} {error['code']}"


def run_checks(url: str, key: str, model: str | None, verify: bool | ssl.SSLContext) -> list[Result]:
    http = httpx.Client(base_url=url, verify=verify, timeout=120)
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, http_client=httpx.Client(verify=verify))
    results: list[Result] = []
    state: dict[str, str] = {}

    def check(name: str, fn: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail = fn()
            results.append(Result(name, True, detail, time.monotonic() - started))
        except Exception as err:  # noqa: BLE001 - every failure becomes a row in the table
            results.append(Result(name, False, f"{type(err).__name__}: {err}"[:200], time.monotonic() - started))

    def health() -> str:
        codes = {path: http.get(path).status_code for path in ("/health/live", "/health/startup", "/health/ready")}
        assert all(code == 200 for code in codes.values()), codes
        return "live, started, ready"

    def models() -> str:
        ids = [m.id for m in client.models.list()]
        assert ids, "no model visible to this key"
        state["model"] = model or ids[0]
        return ", ".join(ids)

    def chat() -> str:
        reply = client.chat.completions.create(model=state["model"], max_tokens=16,
                                               messages=[{"role": "user", "content": "Say hello."}])  # fmt: skip
        assert reply.choices[0].message.content is not None
        return f"{reply.usage.completion_tokens} tokens" if reply.usage else "ok"

    def stream() -> str:
        started = time.monotonic()
        stamps = []
        for chunk in client.chat.completions.create(model=state["model"], max_tokens=32, stream=True,
                                                    messages=[{"role": "user", "content": "Count."}]):  # fmt: skip
            if chunk.choices:
                stamps.append(time.monotonic() - started)
        assert len(stamps) > 1, "fewer than two chunks"
        return f"{len(stamps)} chunks, first after {stamps[0] * 1000:.0f} ms, last after {stamps[-1] * 1000:.0f} ms"

    def completion() -> str:
        reply = client.completions.create(model=state["model"], prompt="Once upon a time", max_tokens=8)
        return f"{reply.usage.completion_tokens} tokens" if reply.usage else "ok"

    def wrong_key() -> str:
        return _error_shape(http.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"}), 401)

    def unknown_model() -> str:
        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        except APIStatusError as err:
            return _error_shape(err.response, 404)
        raise AssertionError("an unknown model was accepted")

    def malformed() -> str:
        response = http.post("/v1/chat/completions", content=b'{"model": ', headers={
            "Authorization": f"Bearer {key}", "content-type": "application/json"})  # fmt: skip
        return _error_shape(response, 400)

    for name, fn in (("health probes", health), ("models", models), ("chat", chat), ("chat, streamed", stream),
                     ("completion", completion), ("wrong key → 401", wrong_key),
                     ("unknown model → 404", unknown_model), ("malformed body → 400", malformed)):  # fmt: skip
        if name in ("chat", "chat, streamed", "completion") and "model" not in state:
            results.append(Result(name, False, "skipped: no model to call", 0.0))
            continue
        check(name, fn)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the appliance (https://HOST or http://HOST:PORT)")
    parser.add_argument("--key", required=True, help="an API key (python -m appliance keys create …)")
    parser.add_argument("--model", help="model to call (default: the first one the key may use)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--cacert", type=argparse.FileType("rb"), metavar="FILE",
                       help="also trust this certificate (PEM), e.g. the self-signed one `make up` names")  # fmt: skip
    trust.add_argument("--insecure", action="store_true", help="verify no certificate at all")
    return parser.parse_args(argv)


def tls_verify(args: argparse.Namespace) -> bool | ssl.SSLContext:
    """httpx's ``verify``: the system's CAs plus --cacert, or nothing with --insecure."""
    if args.insecure:
        return False
    if args.cacert is None:
        return True
    with args.cacert:
        pem = args.cacert.read().decode("ascii", errors="replace")
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=pem)
    return context


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run_checks(args.url.rstrip("/"), args.key, args.model, verify=tls_verify(args))
    table = Table(title=f"appliance API checks: {args.url}", title_justify="left")
    for column in ("check", "result", "detail", "time"):
        table.add_column(column)
    for r in results:
        table.add_row(r.name, "[green]pass[/]" if r.ok else "[red]FAIL[/]", r.detail, f"{r.seconds:.2f}s")
    Console().print(table)
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

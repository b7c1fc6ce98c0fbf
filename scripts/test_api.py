#!/usr/bin/env python3
"""Check a running appliance the way a user would, with the official OpenAI client; print a pass/fail table.

    python scripts/test_api.py --url https://llm.example.com --key sk-...
    python scripts/test_api.py --url https://127.0.0.1 --key sk-... --cacert data/certs/live/localhost/fullchain.pem
    python scripts/test_api.py --url http://127.0.0.1:8000 --key sk-... --model qwen2.5-0.5b-instruct --insecure

Checks: the health probes, /v1/models, a chat completion, a streamed chat completion (first event before
the last), a text completion, a named tool call (on a model with a tool_call_parser) and a json_schema answer
(valid JSON of the schema), the
error shapes for a wrong key, an unknown model and a malformed body, and — when the key may use an
embedding (task embed) or scoring (task score) model — embeddings (float and base64), score and rerank; the
Responses API (created and streamed) on a generating model; the Batch API (a file of two chat requests uploaded,
a batch run to completion within --batch-timeout seconds, its output downloaded, the files deleted).
Checks for a kind of model the key cannot use are shown as skipped. Exit 0 when no check fails, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import httpx
from openai import APIStatusError, OpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import httpx2
    from openai.types.chat import ChatCompletionFunctionToolParam


@dataclass
class Result:
    name: str
    ok: bool
    detail: str
    seconds: float
    skipped: bool = False


def _error_shape(response: httpx.Response | httpx2.Response, status: int) -> str:
    # httpx2: the type openai gives APIStatusError.response (the object is of the client's library, httpx here)
    error = response.json().get("error", {})
    assert response.status_code == status, f"status {response.status_code}, expected {status}"
    assert {"message", "type", "code"} <= set(error), f"not the OpenAI error shape: {response.text[:200]}"
    return f"{status} {error['code']}"


def run_checks(
    url: str, key: str, model: str | None, verify: bool | ssl.SSLContext, batch_timeout: float = 120.0
) -> list[Result]:
    http = httpx.Client(base_url=url, verify=verify, timeout=120)
    # openai types http_client as an httpx2.Client, but takes an httpx.Client as well (is_legacy_httpx_sync_client)
    legacy = cast("httpx2.Client", httpx.Client(verify=verify))
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, http_client=legacy)
    results: list[Result] = []
    state: dict[str, str] = {}

    def check(name: str, fn: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail = fn()
            results.append(Result(name, True, detail, time.monotonic() - started))
        except Exception as err:
            results.append(Result(name, False, f"{type(err).__name__}: {err}"[:200], time.monotonic() - started))

    def health() -> str:
        codes = {path: http.get(path).status_code for path in ("/health/live", "/health/startup", "/health/ready")}
        assert all(code == 200 for code in codes.values()), codes
        return "live, started, ready"

    def models() -> str:
        listed = list(client.models.list())
        assert listed, "no model visible to this key"
        metadata = {m.id: getattr(m, "metadata", None) or {} for m in listed}
        tasks = {mid: data.get("task", "generate") for mid, data in metadata.items()}
        generating = [mid for mid, task in tasks.items() if task == "generate"]
        if model or generating:
            state["model"] = model or generating[0]
        with_tools = [mid for mid in generating if "named" in metadata[mid].get("tool_choice", ())]
        if with_tools:  # vLLM needs the model's tool_call_parser for a named tool_choice
            state["tools"] = state["model"] if state["model"] in with_tools else with_tools[0]
        for mid, task in tasks.items():
            if task == "embed":
                state.setdefault("embed", mid)
            if task in ("embed", "score"):
                state.setdefault("score", mid)
        return ", ".join(f"{mid} ({task})" for mid, task in tasks.items())

    def chat() -> str:
        reply = client.chat.completions.create(
            model=state["model"], max_tokens=16, messages=[{"role": "user", "content": "Say hello."}]
        )
        assert reply.choices[0].message.content is not None
        return f"{reply.usage.completion_tokens} tokens" if reply.usage else "ok"

    def stream() -> str:
        started = time.monotonic()
        stamps = []
        for chunk in client.chat.completions.create(
            model=state["model"], max_tokens=32, stream=True, messages=[{"role": "user", "content": "Count."}]
        ):
            if chunk.choices:
                stamps.append(time.monotonic() - started)
        assert len(stamps) > 1, "fewer than two chunks"
        return f"{len(stamps)} chunks, first after {stamps[0] * 1000:.0f} ms, last after {stamps[-1] * 1000:.0f} ms"

    def completion() -> str:
        reply = client.completions.create(model=state["model"], prompt="Once upon a time", max_tokens=8)
        return f"{reply.usage.completion_tokens} tokens" if reply.usage else "ok"

    schema: dict[str, object] = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}},
        "required": ["colour"],
        "additionalProperties": False,
    }

    def tool_call() -> str:
        tool: ChatCompletionFunctionToolParam = {
            "type": "function",
            "function": {"name": "paint", "parameters": schema},
        }
        reply = client.chat.completions.create(
            model=state["tools"],
            max_tokens=32,
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "paint"}},
            messages=[{"role": "user", "content": "Pick a colour."}],
        )
        calls = reply.choices[0].message.tool_calls
        assert calls, reply.choices[0].message
        call = calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall), call
        arguments = json.loads(call.function.arguments)
        assert call.function.name == "paint" and arguments["colour"] in ("red", "blue"), call
        return call.function.arguments

    def json_schema() -> str:
        reply = client.chat.completions.create(
            model=state["model"],
            max_tokens=32,
            messages=[{"role": "user", "content": "Pick a colour, as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "colour", "schema": schema}},
        )
        content = reply.choices[0].message.content or ""
        assert json.loads(content)["colour"] in ("red", "blue"), content
        return content

    def responses() -> str:
        answer = client.responses.create(model=state["model"], input="Say hello.", max_output_tokens=16)
        assert answer.object == "response" and answer.usage is not None, answer
        kinds = []
        with client.responses.stream(model=state["model"], input="Count.", max_output_tokens=16) as events:
            kinds = [event.type for event in events]
        assert kinds and kinds[-1] == "response.completed", kinds
        return f"{answer.usage.output_tokens} tokens; streamed {len(kinds)} events"

    def embeddings() -> str:
        floats = client.embeddings.create(model=state["embed"], input=["hello", "world"], encoding_format="float")
        assert len(floats.data) == 2 and floats.data[0].embedding, "no embedding"
        raw = http.post(
            "/v1/embeddings",
            json={"model": state["embed"], "input": "hello", "encoding_format": "base64"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        size = len(base64.b64decode(raw["data"][0]["embedding"])) // 4
        assert size == len(floats.data[0].embedding), f"base64 has {size} floats"
        return f"{len(floats.data)} × {size} floats; base64 agrees"

    def rerank() -> str:
        ranked = client.post(
            "/rerank",
            cast_to=httpx.Response,
            body={"model": state["score"], "query": "a cat", "documents": ["a cat sat", "blue sky"], "top_n": 1},
        ).json()
        assert len(ranked["results"]) == 1 and "relevance_score" in ranked["results"][0], ranked
        scored = client.post(
            "/score",
            cast_to=httpx.Response,
            body={"model": state["score"], "text_1": "a cat", "text_2": ["a cat sat", "blue sky"]},
        ).json()
        assert len(scored["data"]) == 2, scored
        return f"best document {ranked['results'][0]['index']}; scores {[round(d['score'], 3) for d in scored['data']]}"

    def batch() -> str:
        lines = "".join(
            json.dumps(
                {
                    "custom_id": f"check-{n}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": state["model"],
                        "max_tokens": 4,
                        "messages": [{"role": "user", "content": "Say hello."}],
                    },
                }
            )
            + "\n"
            for n in range(2)
        )
        uploaded = client.files.create(file=("test_api.jsonl", lines.encode()), purpose="batch")
        job = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + batch_timeout
        while job.status not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
            time.sleep(1)
            job = client.batches.retrieve(job.id)
        if job.status not in ("completed", "failed", "cancelled", "expired"):
            client.batches.cancel(job.id)
            raise AssertionError(f"batch still {job.status} after {batch_timeout:.0f} s (cancelled; the engines busy?)")
        assert job.status == "completed" and job.output_file_id, f"batch {job.status}: {job.errors}"
        output = [json.loads(x) for x in client.files.content(job.output_file_id).text.splitlines()]
        assert sorted(x["custom_id"] for x in output) == ["check-0", "check-1"], output
        assert all(x["response"]["status_code"] == 200 for x in output), output
        for file_id in (uploaded.id, job.output_file_id, job.error_file_id):
            if file_id:
                client.files.delete(file_id)
        counts = job.request_counts
        assert counts is not None, f"batch {job.status} without request_counts"
        return f"{counts.completed}/{counts.total} answered"

    def tokenize() -> str:  # vLLM's own endpoint, outside /v1/
        answer = http.post(
            "/tokenize",
            json={"model": state["model"], "prompt": "hello world"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, f"{answer.status_code}: {answer.text[:120]}"
        data = answer.json()
        assert data["count"] == len(data["tokens"]) > 0, data
        return f"{data['count']} tokens; max_model_len {data['max_model_len']}"

    def wrong_key() -> str:
        return _error_shape(http.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"}), 401)

    def unknown_model() -> str:
        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        except APIStatusError as err:
            return _error_shape(err.response, 404)
        raise AssertionError("an unknown model was accepted")

    def malformed() -> str:
        response = http.post(
            "/v1/chat/completions",
            content=b'{"model": ',
            headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        return _error_shape(response, 400)

    needs = {
        "chat": "model",
        "chat, streamed": "model",
        "completion": "model",
        "tool call (named)": "tools",
        "responses (created, streamed)": "model",
        "batch (files, batches)": "model",
        "tokenize": "model",
        "json_schema answer": "model",
        "embeddings": "embed",
        "score and rerank": "score",
    }
    for name, fn in (
        ("health probes", health),
        ("models", models),
        ("chat", chat),
        ("chat, streamed", stream),
        ("completion", completion),
        ("tool call (named)", tool_call),
        ("json_schema answer", json_schema),
        ("responses (created, streamed)", responses),
        ("batch (files, batches)", batch),
        ("tokenize", tokenize),
        ("embeddings", embeddings),
        ("score and rerank", rerank),
        ("wrong key → 401", wrong_key),
        ("unknown model → 404", unknown_model),
        ("malformed body → 400", malformed),
    ):
        need = needs.get(name)
        if need is not None and need not in state:
            kind = {
                "model": "generating",
                "tools": "tool-calling (tool_call_parser)",
                "embed": "embedding",
                "score": "embedding or scoring",
            }[need]
            results.append(Result(name, False, f"no {kind} model for this key", 0.0, skipped=True))
            continue
        check(name, fn)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL of the appliance (https://HOST or http://HOST:PORT)")
    parser.add_argument("--key", required=True, help="an API key (python -m appliance keys create …)")
    parser.add_argument("--model", help="model to call (default: the first one the key may use)")
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long the batch check waits for its batch to finish (it runs when the engines are idle)",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--cacert",
        type=argparse.FileType("rb"),
        metavar="FILE",
        help="also trust this certificate (PEM), e.g. the self-signed one `make up` names",
    )
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
    results = run_checks(
        args.url.rstrip("/"), args.key, args.model, verify=tls_verify(args), batch_timeout=args.batch_timeout
    )
    table = Table(title=f"appliance API checks: {args.url}", title_justify="left")
    for column in ("check", "result", "detail", "time"):
        table.add_column(column)
    for r in results:
        verdict = "[yellow]skip[/]" if r.skipped else "[green]pass[/]" if r.ok else "[red]FAIL[/]"
        table.add_row(r.name, verdict, r.detail, f"{r.seconds:.2f}s")
    Console().print(table)
    skipped = sum(r.skipped for r in results)
    failed = sum(not r.ok and not r.skipped for r in results)
    print(f"{len(results) - failed - skipped} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

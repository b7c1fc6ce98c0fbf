"""The Batch API end to end with the official OpenAI client: files and batches on the tier's stack (Ray Serve,
vLLM on the tiny models, PII masking on), every line through the gate as its key, results as files."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import openai
import psutil
import pytest

from tests.e2e.conftest import EMBED_MODEL, Stack
from tests.traffic import processes_in_pid_namespace

CHAT = "/v1/chat/completions"
FINAL = ("completed", "failed", "cancelled", "expired")
POLL_LIMIT = 600  # polls (0.5 s apart) before a batch that never finishes fails the test


def _jsonl(count: int, model: str = "tiny-a", url: str = CHAT, max_tokens: int = 4, **extra: object) -> bytes:
    lines = []
    for n in range(count):
        body = (
            {"model": model, "input": f"text {n}"}
            if url == "/v1/embeddings"
            else {
                "model": model,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"Say {n}."}],
                **extra,
            }
        )
        lines.append(json.dumps({"custom_id": f"req-{n}", "method": "POST", "url": url, "body": body}))
    return ("\n".join(lines) + "\n").encode()


def _finished(client: openai.OpenAI, batch_id: str, *, outage: bool = False):
    batch = None
    for _ in range(POLL_LIMIT):
        try:
            batch = client.batches.retrieve(batch_id)
        except (openai.APIConnectionError, openai.InternalServerError):
            if not outage:  # only while the ingress restarts
                raise
            time.sleep(0.5)
            continue
        if batch.status in FINAL:
            return batch
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} still {batch and batch.status}")


def _ingress_process() -> psutil.Process:
    found = [
        p
        for p in processes_in_pid_namespace()
        if "ServeReplica:appliance:ApplianceIngress" in " ".join(p.info["cmdline"] or [])
    ]
    assert len(found) == 1, f"expected one ingress replica, found {[p.pid for p in found]}"
    return found[0]


def _audit(stack: Stack) -> list[dict]:
    return [json.loads(line) for line in stack.audit.read_text().splitlines()]


def test_a_batch_of_20_completes_is_listed_and_its_output_downloads(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    uploaded = client.files.create(file=("twenty.jsonl", _jsonl(20)), purpose="batch")
    assert (uploaded.object, uploaded.purpose, uploaded.filename) == ("file", "batch", "twenty.jsonl")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", metadata={"suite": "e2e"}
    )
    assert batch.status == "validating" and batch.request_counts.total == 20
    done = _finished(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (20, 20, 0)
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.error_file_id is None
    assert batch.id in [b.id for b in client.batches.list(limit=100).data]
    assert done.output_file_id in [f.id for f in client.files.list().data]
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{n}" for n in range(20))
    for line in output:
        assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
        response = line["response"]
        assert (
            response["status_code"] == 200 and response["request_id"] == f"{batch.id}-{int(line['custom_id'][4:]) + 1}"
        )
        body = response["body"]
        assert body["object"] == "chat.completion" and body["model"] == "tiny-a"
        assert 1 <= body["usage"]["completion_tokens"] <= 4
    audited = [a for a in _audit(stack) if a.get("batch_id") == batch.id]
    assert len(audited) == 20 and {(a["key"], a["endpoint"], a["status"]) for a in audited} == {("usera", CHAT, 200)}
    assert {a["request_id"] for a in audited} == {line["response"]["request_id"] for line in output}
    assert all(a["prompt_tokens"] and a["completion_tokens"] for a in audited)
    management = {(a["method"], a["endpoint"]) for a in _audit(stack) if a["key"] == "usera"}
    assert {("POST", "/v1/files"), ("POST", "/v1/batches"), ("GET", f"/v1/batches/{batch.id}")} <= management


def test_an_embeddings_batch(stack: Stack) -> None:
    client = stack.client(stack.keys["embedder"])
    uploaded = client.files.create(file=("embed.jsonl", _jsonl(3, EMBED_MODEL, "/v1/embeddings")), purpose="batch")
    done = _finished(
        client, client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h").id
    )
    assert done.status == "completed" and done.request_counts.completed == 3
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert all(line["response"]["body"]["data"][0]["embedding"] for line in output)


def test_a_cancelled_batch_stops(stack: Stack) -> None:
    client = stack.client(stack.keys["usera"])
    uploaded = client.files.create(file=("long.jsonl", _jsonl(200, max_tokens=48, ignore_eos=True)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = _finished(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    counts = done.request_counts
    assert counts.total == 200 and counts.completed < 200 and counts.completed + counts.failed == 200
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert len(errors) == counts.failed and {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    sent = [a for a in _audit(stack) if a.get("batch_id") == batch.id]
    assert len(sent) == counts.completed  # no line was sent after the cancel was seen, besides those answered
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling again changes nothing


def test_keys_see_only_their_own_and_lines_are_checked_at_the_edge(stack: Stack) -> None:
    owner, other = stack.client(stack.keys["usera"]), stack.client(stack.keys["userb"])
    uploaded = owner.files.create(file=("mine.jsonl", _jsonl(2)), purpose="batch")
    batch = owner.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    for call in (
        lambda: other.files.retrieve(uploaded.id),
        lambda: other.files.content(uploaded.id),
        lambda: other.files.delete(uploaded.id),
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
        lambda: other.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert batch.id not in [b.id for b in other.batches.list(limit=100).data]
    assert uploaded.id not in [f.id for f in other.files.list().data]
    # userb may use tiny-b only: its batch of tiny-a lines is refused with each line's reason, nothing runs
    theirs = other.files.create(
        file=(
            "theirs.jsonl",
            _jsonl(2)
            + _jsonl(1, "no-such-model").replace(b"req-0", b"req-9")
            + _jsonl(1, "tiny-b", "/v1/completions").replace(b"req-0", b"req-8"),
        ),
        purpose="batch",
    )
    refused = other.batches.create(input_file_id=theirs.id, endpoint=CHAT, completion_window="24h")
    assert refused.status == "failed" and refused.failed_at
    assert [(e.line, e.code) for e in refused.errors.data] == [
        (1, "model_not_allowed"),
        (2, "model_not_allowed"),
        (3, "model_not_found"),
        (4, "mismatched_url"),
    ]
    assert all("Traceback" not in e.message for e in refused.errors.data)
    with pytest.raises(openai.BadRequestError):
        other.batches.create(input_file_id=theirs.id, endpoint="/v1/responses", completion_window="24h")
    with pytest.raises(openai.BadRequestError) as caught:
        other.files.create(file=("bad.jsonl", b"{not json\n"), purpose="batch")
    assert caught.value.code == "invalid_file"
    with pytest.raises(openai.AuthenticationError):
        stack.client("sk-not-a-key").batches.list()
    assert _finished(owner, batch.id).status == "completed"
    with pytest.raises(openai.ConflictError):  # a finished batch cannot be cancelled
        owner.batches.cancel(batch.id)
    assert owner.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        owner.files.retrieve(uploaded.id)


def test_batch_lines_are_masked_for_the_engine_and_restored_in_the_output(stack: Stack) -> None:
    """PII is on for the session: a batch line passes the same bookend as a live request. The engine's own view
    (echoed prompt tokens) has placeholders; the output file has the user's values back."""
    from tests.e2e.test_pii import PROMPT, _assert_masked

    client = stack.client(stack.keys["usera"])
    line = {
        "custom_id": "pii",
        "method": "POST",
        "url": "/v1/completions",
        "body": {"model": "tiny-a", "prompt": PROMPT, "max_tokens": 2, "echo": True, "logprobs": 0},
    }
    uploaded = client.files.create(file=("pii.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch")
    done = _finished(
        client, client.batches.create(input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h").id
    )
    assert done.status == "completed" and done.request_counts.completed == 1, done
    [answer] = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    choice = answer["response"]["body"]["choices"][0]
    _assert_masked("".join(choice["logprobs"]["tokens"]))
    assert choice["text"].startswith(PROMPT), choice["text"]


def test_a_batch_resumes_after_its_ingress_replica_dies_without_sending_answered_lines_again(stack: Stack) -> None:
    """SIGKILL the ingress replica (its runner with it) mid-batch: Serve starts a new one, the dead runner's lease
    lapses, the new runner takes the batch and sends only the lines without an answer. The last test of the file:
    it waits until the stack is ready again."""
    client = stack.client(stack.keys["usera"])
    uploaded = client.files.create(file=("resume.jsonl", _jsonl(60, max_tokens=48, ignore_eos=True)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    for _ in range(POLL_LIMIT):
        answered = client.batches.retrieve(batch.id).request_counts.completed
        if answered >= 5:
            break
        time.sleep(0.2)
    assert 5 <= answered < 60, answered
    ingress = _ingress_process()
    os.kill(ingress.pid, signal.SIGKILL)
    done = _finished(client, batch.id, outage=True)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (60, 60, 0)
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{n}" for n in range(60))  # each once
    sent = Counter(a["request_id"] for a in _audit(stack) if a.get("batch_id") == batch.id)
    assert set(sent) == {line["response"]["request_id"] for line in output}
    # a line is sent twice only if it was in flight at the kill (answered, audited, not yet recorded)
    assert sum(n - 1 for n in sent.values()) <= 4, sent  # BATCH_CONCURRENCY
    assert _ingress_process().pid != ingress.pid
    for _ in range(POLL_LIMIT):
        if stack.get("/health/ready").status_code == 200:
            break
        time.sleep(0.5)
    assert stack.get("/health/ready").status_code == 200

"""ApplicationErrors: ray.serve.llm's exception handling without BaseHTTPMiddleware, the same answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException
from ray.llm._internal.serve.core.ingress.middleware import add_exception_handling_middleware

from appliance.serve.app_errors import ApplicationErrors, add_application_errors


class Body(BaseModel):
    n: int


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=400, content={"error": {"message": "invalid", "code": "invalid_parameter"}})


def _app(ours: bool) -> FastAPI:
    app = FastAPI()
    if ours:
        add_application_errors(app, _validation_error)
    else:
        add_exception_handling_middleware(app)  # what the appliance's ingress app did before
        app.add_exception_handler(RequestValidationError, _validation_error)

    @app.post("/value-error")
    async def value_error() -> None:
        raise ValueError("the route failed")

    @app.post("/not-found")
    async def not_found() -> None:
        raise OpenAIHTTPException(status_code=404, message="no such model", type="NotFoundError")

    @app.post("/validated")
    async def validated(body: Body) -> dict[str, int]:
        return {"n": body.n}

    @app.post("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for i in range(3):
                yield f"data: {i}\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.post("/cut")
    async def cut() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            yield "data: 0\n\n"
            raise RuntimeError("cut mid-stream")

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


@pytest.mark.parametrize("path", ["/value-error", "/not-found"])
def test_an_error_before_the_response_is_answered_as_ray_serve_llm_answers_it(path: str) -> None:
    with TestClient(_app(ours=True)) as ours, TestClient(_app(ours=False)) as theirs:
        mine, stock = ours.post(path), theirs.post(path)
    assert mine.status_code == stock.status_code
    assert mine.status_code in (400, 404, 500)
    assert mine.json() == stock.json()
    assert set(mine.json()["error"]) >= {"message", "type", "code"}


def test_a_validation_error_gets_the_given_answer() -> None:
    with TestClient(_app(ours=True)) as client:
        answer = client.post("/validated", json={"n": "not a number"})
        assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_parameter")
        assert client.post("/validated", json={"n": 3}).json() == {"n": 3}


def test_a_stream_passes_unchanged() -> None:
    with TestClient(_app(ours=True)) as client:
        answer = client.post("/stream")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_an_error_after_the_response_started_goes_on_up() -> None:
    with TestClient(_app(ours=True)) as client, pytest.raises(RuntimeError, match="cut mid-stream"):
        client.post("/cut")


def test_a_cancellation_goes_on_up() -> None:
    async def cancelled(scope: object, receive: object, send: object) -> None:
        raise asyncio.CancelledError

    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    middleware = ApplicationErrors(cancelled)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(middleware({"type": "http", "headers": []}, receive, send))
    assert sent == []

"""ray.serve.llm's application-error middleware as plain ASGI.

ray.serve.llm turns an exception a route raises into its OpenAI-shaped JSON answer with a Starlette
``BaseHTTPMiddleware`` (``add_exception_handling_middleware``). Such a middleware hands every message of a
response through an anyio memory stream, from a task of its own: for a stream, every batch of tokens. Under
streaming load (32 streams, py-spy on the ingress replica) that plumbing was about a tenth of the replica's
CPU. :class:`ApplicationErrors` answers the same errors the same way and passes messages straight on.

What it answers: an exception raised before the response started, as ray.serve.llm's middleware does
(``get_response_for_error``: status and OpenAI error body from the exception). An exception after the response
started goes on up (the response cannot be replaced; the server ends the connection), and so does a
cancellation. Validation errors never reach it: Starlette answers them with their handler further in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from ray.llm._internal.serve.core.ingress.middleware import _uncaught_exception_handler, get_request_id
from ray.llm._internal.serve.utils.server_utils import get_response_for_error
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ValidationHandler = Callable[[Request, Exception], Awaitable[Response]]


class ApplicationErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if started:
                raise
            answer = get_response_for_error(err, get_request_id(Request(scope, receive)))
        await JSONResponse(content=answer.model_dump(), status_code=answer.error.code)(scope, receive, send)


def add_application_errors(app: FastAPI, validation_error: ValidationHandler) -> None:
    """What ray.serve.llm's ``add_exception_handling_middleware`` sets up, without its BaseHTTPMiddleware: the
    last-resort handler for exceptions from the middleware itself, validation errors answered by
    ``validation_error``, and :class:`ApplicationErrors` around the routes."""
    app.add_exception_handler(Exception, _uncaught_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(ApplicationErrors)

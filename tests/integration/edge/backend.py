"""A small backend that stands in for the services behind nginx in the edge tests (run as a subprocess).

- ``/v1/echo``: the request as JSON (method, path, headers, body length), with an ``X-Request-ID`` (and an
  ``X-Client-Request-ID``) of its own in the response headers, as the real gate sends.
- ``/v1/stream``: an SSE stream that sends one event, then waits until ``/v1/release`` is called before
  the rest — a buffering proxy would never deliver the first event before the release.
- ``/v1/fail``: a 500, as a broken service would answer.
- ``/health/*``, ``/prometheus/*``, ``/grafana/*``, anything else: the path it was asked for as JSON.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

RELEASE = asyncio.Event()


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    # Like the real gate, the answer names a request id of its own: nginx must hide it (one X-Request-ID).
    own_ids = {
        "X-Request-ID": f"backend-{request.headers.get('X-Request-ID', 'none')}",
        "X-Client-Request-ID": "backend-client-id",
    }
    return web.json_response(
        {"method": request.method, "path": request.path_qs, "headers": dict(request.headers), "body_bytes": len(body)},
        headers=own_ids,
    )


async def stream(request: web.Request) -> web.StreamResponse:
    RELEASE.clear()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    await response.write(b"data: first\n\n")
    await asyncio.wait_for(RELEASE.wait(), timeout=60)
    await response.write(b"data: second\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def fail(_request: web.Request) -> web.Response:
    return web.json_response({"error": "backend failure"}, status=500)


async def release(_request: web.Request) -> web.Response:
    RELEASE.set()
    return web.json_response({"released": True})


def main() -> None:
    port = int(sys.argv[1])
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/v1/stream", stream)
    app.router.add_route("*", "/v1/release", release)
    app.router.add_route("*", "/v1/fail", fail)
    app.router.add_route("*", "/{tail:.*}", echo)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()

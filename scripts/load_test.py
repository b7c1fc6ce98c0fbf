#!/usr/bin/env python3
"""Drive the edge's rate limits under load and count what comes back: accepted (2xx) / 429 / other.

Bounded in count, concurrency and time, and loopback only: the target must be 127.0.0.0/8 or ::1
(``localhost`` is fine). Under a flood the edge must answer only 2xx and 429 — any 5xx or connection
error makes the exit status 1.

    python scripts/load_test.py --url https://localhost:443 --path /v1/models --requests 500 \\
        --concurrency 32 --key sk-... --insecure
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import ssl
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_REQUESTS = 20_000
MAX_CONCURRENCY = 256
MAX_SECONDS = 120.0


def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError as err:
        raise SystemExit(f"load_test: cannot resolve {host!r}: {err}") from None
    outside = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if outside:
        raise SystemExit(
            f"load_test: refusing {url}: {host} resolves to non-loopback {', '.join(sorted(outside))}; "
            "this tool only targets this machine (127.0.0.0/8, ::1)"
        )


def bucket(status: int) -> str:
    if 200 <= status < 300:
        return "accepted"
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    return "other"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    verify: ssl.SSLContext | bool = True
    if args.insecure:
        verify = False
    elif args.cacert:
        verify = ssl.create_default_context(cafile=args.cacert)
    transport = httpx.AsyncHTTPTransport(verify=verify, local_address=args.source_address, retries=0)
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    counts: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(args.requests):
        queue.put_nowait(index)
    deadline = time.monotonic() + args.seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                response = await client.request(
                    args.method, args.path, headers=headers, content=args.body.encode() if args.body else None
                )
            except httpx.HTTPError as err:
                counts["error"] += 1
                statuses[0] += 1
                if args.verbose:
                    print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            counts[bucket(response.status_code)] += 1
            statuses[response.status_code] += 1
            if response.status_code == 429 and "retry-after" in response.headers:
                retry_after.add(response.headers["retry-after"])

    started = time.monotonic()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, transport=transport, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
    elapsed = time.monotonic() - started
    sent = sum(counts.values())
    return {
        "url": args.url + args.path,
        "sent": sent,
        "seconds": round(elapsed, 3),
        "accepted": counts["accepted"],
        "rate_limited_429": counts["429"],
        "other_4xx": counts["other"],
        "server_errors_5xx": counts["5xx"],
        "connection_errors": counts["error"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "retry_after": sorted(retry_after),
        "requests_per_second": round(sent / elapsed, 1) if elapsed else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="https://localhost:443", help="scheme://host:port of the edge (loopback)")
    parser.add_argument("--path", default="/v1/models", help="request path (default /v1/models)")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="request body (e.g. a small JSON)")
    parser.add_argument("--key", default="", help="API key sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--requests", type=int, default=300, help=f"requests in all (max {MAX_REQUESTS})")
    parser.add_argument("--concurrency", type=int, default=16, help=f"requests in flight (max {MAX_CONCURRENCY})")
    parser.add_argument("--seconds", type=float, default=30.0, help=f"stop after this long (max {MAX_SECONDS:.0f})")
    parser.add_argument("--source-address", default=None, help="loopback source address to send from (127.0.0.x)")
    parser.add_argument("--cacert", default=None, help="CA/certificate file to trust (self-signed edge)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    for name, top in (("requests", MAX_REQUESTS), ("concurrency", MAX_CONCURRENCY), ("seconds", MAX_SECONDS)):
        value = getattr(args, name)
        if not 0 < value <= top:
            parser.error(f"--{name}: expected 1..{top}, found {value}")
    loopback_only(args.url)
    if args.source_address and not ipaddress.ip_address(args.source_address).is_loopback:
        parser.error(f"--source-address: expected a loopback address, found {args.source_address}")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    bad = result["server_errors_5xx"] + result["connection_errors"]
    if bad:
        print(
            f"load_test: {bad} answer(s) were neither 2xx nor 429-style refusals (5xx or connection errors)",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

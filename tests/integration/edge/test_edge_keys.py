"""Every spelling of one API key is one nginx rate-limit bucket (njs apikey.key_id), through real nginx + njs.

The header bytes go out exactly as listed (raw sockets: client libraries refuse or tidy most of them).
Some spellings nginx itself refuses with 400; those count as not served.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator

import pytest

from appliance.config.render.nginx import NGINX_DIR
from tests.helpers import free_port
from tests.integration.edge.conftest import BURST, JS_MODULE, NGINX, Edge, need_tools, raw_exchange, stop, wait_port

pytestmark = pytest.mark.security

KEY = b"sk-spelling-key-0123456789"
# The same key written 42 ways: scheme case, ASCII / Latin-1 / Unicode (UTF-8) whitespace before, between, after.
SPELLINGS = [
    b"bearer " + KEY,
    b"BEARER " + KEY,
    b"BeArEr " + KEY,
    b"Bearer  " + KEY,
    b"Bearer\t" + KEY,
    b"Bearer \t " + KEY,
    b"Bearer " + KEY + b"\t",
    b"Bearer " + KEY + b"\x0b",
    b"Bearer " + KEY + b"\x0c",
    b"Bearer " + KEY + b"\x1c",
    b"Bearer " + KEY + b"\x1f",
    b"Bearer " + KEY + b"\x85",
    b"Bearer " + KEY + b"\xa0",
    b"Bearer " + KEY + b"\xc2\xa0",
    b"Bearer " + KEY + b"\xc2\x85",
    b"Bearer " + KEY + b"\xe3\x80\x80",
    b"Bearer " + KEY + b"\xe2\x80\x83",
    b"Bearer " + KEY + b"\xe2\x80\xaf",
    b"Bearer " + KEY + b"\xe2\x81\x9f",
    b"Bearer " + KEY + b"\xe1\x9a\x80",
    b"Bearer " + KEY + b"\xef\xbb\xbf",
    b"Bearer " + KEY + b"\xe2\x80\x8b",
    b"Bearer " + KEY + b"\xe2\x80\xa8",
    b"\x0bBearer " + KEY,
    b"\xa0Bearer " + KEY,
    b"\xc2\xa0Bearer " + KEY,
    b"Bearer\xa0" + KEY,
    b"Bearer\x0b" + KEY,
    b"Bearer\xe3\x80\x80" + KEY,
    b"Bearer \xc2\xa0 " + KEY + b" \xc2\xa0",
    b"bearer\t\t " + KEY + b"\x0b\xa0\t",
    b"\tBEARER " + KEY + b"\t",
    b"Bearer\x1c" + KEY,
    b"Bearer " + KEY + b"\x0b\x0b",
    b"Bearer\xe2\x80\x82\xe2\x80\x82" + KEY,
    b"bEARER\x85" + KEY,
    b"Bearer " + KEY + b"\xe2\x80\x85\xa0",
    KEY,
    b" " + KEY + b"\x0b",
    b"Bearer " + KEY + b"\r",  # a CR before the CRLF: nginx ends the value there
    b"Bearer " + KEY + b"\x00",  # a NUL: nginx answers 400 itself
]
NOT_COUNTED = [b"Bearer", b"bearer   ", b"\xa0", b"Bearer \xe2\x80\x85\x0b"]  # no token: ""


def _request(authorization: bytes | None, host: bytes = b"localhost") -> bytes:
    header = b"" if authorization is None else b"Authorization: " + authorization + b"\r\n"
    return b"GET /v1/echo HTTP/1.1\r\nHost: " + host + b"\r\n" + header + b"Connection: close\r\n\r\n"


def _status(edge: Edge, source: str, authorization: bytes) -> int | str:
    """The status; "refused by nginx" when nginx itself answered 400 (the backend's own 400s count as served:
    the request got past the limiter)."""
    status, body = raw_exchange(edge.https, _request(authorization), source=source, cafile=edge.cert_file)
    return "refused by nginx" if status == 400 and b"<center>nginx</center>" in body else status


def test_every_spelling_of_a_key_shares_the_plain_spellings_bucket(edge: Edge) -> None:
    plain = b"Bearer " + KEY
    # Each request from a fresh address: only the key's budget is spent (6/min, burst 3: the whole test must
    # finish well within the 10 s in which one request's worth comes back).
    assert [_status(edge, f"127.0.5.{i + 1}", plain) for i in range(1 + BURST)] == [200] * (1 + BURST)
    assert _status(edge, "127.0.5.100", plain) == 429
    seen = {spelling: _status(edge, f"127.0.6.{i + 1}", spelling) for i, spelling in enumerate(SPELLINGS)}
    served = {spelling: code for spelling, code in seen.items() if code not in ("refused by nginx", 429)}
    assert not served, f"spellings with a budget of their own: {served}"
    assert sum(code == 429 for code in seen.values()) >= 30, seen
    assert _status(edge, "127.0.5.101", b"Bearer sk-spelling-key-other") == 200  # another key: its own budget


@pytest.fixture(scope="module")
def digest_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A bare nginx that answers each request with $api_key_id, computed by the shipped apikey.js."""
    need_tools()
    root, port = tmp_path_factory.mktemp("njs-digest"), free_port()
    conf = root / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {root};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"""load_module {JS_MODULE};
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{}}
http {{
    {temp}
    access_log off;
    js_import apikey from {NGINX_DIR / "njs" / "apikey.js"};
    js_set $api_key_id apikey.key_id;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "$api_key_id"; }} }}
}}
""")
    checked = subprocess.run(
        [NGINX, "-c", str(conf), "-e", f"{root}/error.log", "-t", "-q"], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-e", f"{root}/error.log", "-g", "daemon off;"])
    wait_port(port, proc, "nginx (njs digest)")
    yield port
    stop(proc)


def _digest(port: int, authorization: bytes | None) -> tuple[int, str]:
    status, body = raw_exchange(port, _request(authorization))
    return status, body.decode()


def test_the_key_id_is_the_digest_of_the_token_alone(digest_port: int) -> None:
    expected = hashlib.sha256(KEY).hexdigest()
    assert _digest(digest_port, b"Bearer " + KEY) == (200, expected)
    digests = {spelling: _digest(digest_port, spelling) for spelling in SPELLINGS}
    assert {answer for answer in digests.values() if answer[0] != 400} == {(200, expected)}
    assert [spelling for spelling, answer in digests.items() if answer[0] == 400] == [b"Bearer " + KEY + b"\x00"]


def test_no_token_is_not_counted_and_other_tokens_differ(digest_port: int) -> None:
    assert _digest(digest_port, None) == (200, "")
    for empty in NOT_COUNTED:
        assert _digest(digest_port, empty) == (200, ""), empty
    others = [
        b"Bearer " + KEY + b"x",
        b"Bearer x" + KEY,
        b"Bearer" + KEY,
        b"Basic " + KEY,
        b"Bearer " + KEY + b"\xe2\x80",
        b"Bearer " + KEY + b"\x7f",
        b"Bearer " + KEY + b" extra",
    ]
    digests = [_digest(digest_port, other) for other in others]
    assert len({digest for _, digest in digests}) == len(others)
    assert hashlib.sha256(KEY).hexdigest() not in {digest for _, digest in digests}


def test_two_authorization_headers_are_refused_by_nginx(edge: Edge) -> None:
    """So the gate never reads another key than the one nginx counted."""
    request = (
        b"GET /v1/echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
        + KEY
        + b"\r\nAuthorization: Bearer sk-another\r\nConnection: close\r\n\r\n"
    )
    status, body = raw_exchange(edge.https, request, source="127.0.5.200", cafile=edge.cert_file)
    assert status == 400 and b"<center>nginx</center>" in body

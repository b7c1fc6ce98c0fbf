"""htpasswd lines with SHA-512 crypt (``$6$``), the strongest scheme nginx 1.22 on glibc/libxcrypt verifies.

nginx checks ``auth_basic_user_file`` entries with the system's crypt(3). ``$6$`` works with every glibc
and libxcrypt build, so it works in any nginx image; bcrypt (``$2y$``) depends on libxcrypt and is absent
from glibc-only builds, and nginx's built-in ``{SSHA}`` is a single salted SHA-1. Python's ``crypt``
module is deprecated (removed in 3.13), so SHA-512 crypt is implemented here from Drepper's specification
(https://www.akkadia.org/drepper/SHA-crypt.txt); tests check it against ``openssl passwd -6``.
"""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SALT_CHARS = string.ascii_letters + string.digits + "./"
DEFAULT_ROUNDS = 20_000
# The byte permutation of the final base-64 encoding (from the specification).
_ORDER = (
    (0, 21, 42),
    (22, 43, 1),
    (44, 2, 23),
    (3, 24, 45),
    (25, 46, 4),
    (47, 5, 26),
    (6, 27, 48),
    (28, 49, 7),
    (50, 8, 29),
    (9, 30, 51),
    (31, 52, 10),
    (53, 11, 32),
    (12, 33, 54),
    (34, 55, 13),
    (56, 14, 35),
    (15, 36, 57),
    (37, 58, 16),
    (59, 17, 38),
    (18, 39, 60),
    (40, 61, 19),
    (62, 20, 41),
)


def _b64(b2: int, b1: int, b0: int, count: int) -> str:
    value = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(count):
        out.append(_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // 64 + 1))[:length]


def sha512_crypt(password: str, salt: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """The ``$6$`` crypt string of ``password`` (salt: up to 16 characters of ``[./A-Za-z0-9]``)."""
    key = password.encode("utf-8")
    salt_b = salt[:16].encode("ascii")
    rounds = max(1000, min(rounds, 999_999_999))
    alt = hashlib.sha512(key + salt_b + key).digest()
    ctx = hashlib.sha512(key + salt_b + _repeat(alt, len(key)))
    length = len(key)
    while length:
        ctx.update(alt if length & 1 else key)
        length >>= 1
    a = ctx.digest()
    p = _repeat(hashlib.sha512(key * len(key)).digest(), len(key))
    s = _repeat(hashlib.sha512(salt_b * (16 + a[0])).digest(), len(salt_b))
    c = a
    for i in range(rounds):
        h = hashlib.sha512(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()
    encoded = "".join(_b64(c[x], c[y], c[z], 4) for x, y, z in _ORDER) + _b64(0, 0, c[63], 2)
    prefix = "$6$" if rounds == 5000 else f"$6$rounds={rounds}$"
    return f"{prefix}{salt[:16]}${encoded}"


def htpasswd_line(user: str, password: str, *, salt: str | None = None, rounds: int = DEFAULT_ROUNDS) -> str:
    """``user:$6$rounds=N$salt$hash`` for an nginx ``auth_basic_user_file``; never the password itself."""
    if ":" in user or "\n" in user:
        raise ValueError("a user name cannot contain ':' or a newline")
    salt = salt or "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    return f"{user}:{sha512_crypt(password, salt, rounds)}\n"

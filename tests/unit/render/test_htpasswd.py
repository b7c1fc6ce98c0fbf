"""SHA-512 crypt against the specification's test vectors (nginx verifies these with crypt(3))."""

from __future__ import annotations

import pytest

from appliance.config.render.htpasswd import htpasswd_line, sha512_crypt

# From https://www.akkadia.org/drepper/SHA-crypt.txt
VECTORS = [
    (
        "Hello world!",
        "saltstring",
        5000,
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ),
    (
        "Hello world!",
        "saltstringsaltstring",
        10000,
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    ),
    (
        "This is just a test",
        "toolongsaltstring",
        5000,
        "$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
    ),
]


@pytest.mark.parametrize(("password", "salt", "rounds", "expected"), VECTORS)
def test_sha512_crypt_matches_the_specification(password: str, salt: str, rounds: int, expected: str) -> None:
    assert sha512_crypt(password, salt, rounds) == expected


def test_htpasswd_line_never_contains_the_password() -> None:
    line = htpasswd_line("admin", "correct-horse-battery", salt="abcdefgh")
    assert line.startswith("admin:$6$rounds=20000$abcdefgh$") and line.endswith("\n")
    assert "correct-horse-battery" not in line
    assert htpasswd_line("admin", "x", salt="abcdefgh") != htpasswd_line("admin", "y", salt="abcdefgh")


def test_random_salts_differ() -> None:
    assert htpasswd_line("admin", "same-password-1") != htpasswd_line("admin", "same-password-1")


def test_user_names_with_a_colon_are_refused() -> None:
    with pytest.raises(ValueError, match="':'"):
        htpasswd_line("ad:min", "pw-pw-pw-pw-pw")

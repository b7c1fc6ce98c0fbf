"""A strict parser for ``.env``-style files (``.env`` and ``.secrets``).

Accepts what Docker Compose accepts for the common cases: ``KEY=value``, an optional ``export`` prefix,
blank lines and ``#`` comments, single-quoted (literal) and double-quoted (with ``\\"``, ``\\\\``, ``\\n``
escapes) values, and ``# comments`` after an unquoted value when preceded by whitespace. Anything else is
reported with its line number instead of being guessed at. For a secrets file, the offending line's content
is never echoed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.config.issues import ConfigIssue, Severity

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "$": "$"}


@dataclass(frozen=True)
class EnvEntry:
    key: str
    value: str
    line: int


@dataclass(frozen=True)
class ParsedEnv:
    entries: dict[str, EnvEntry]
    issues: list[ConfigIssue]

    def values(self) -> dict[str, str]:
        return {key: entry.value for key, entry in self.entries.items()}

    def line_of(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return entry.line if entry else None


class _LineError(ValueError):
    def __init__(self, key: str, expected: str, hint: str = "") -> None:
        super().__init__(expected)
        self.key = key
        self.expected = expected
        self.hint = hint


def parse_dotenv(text: str, file: str, *, secret: bool = False) -> ParsedEnv:
    """Parse ``text`` (the content of ``file``). Never raises: problems come back as issues."""
    entries: dict[str, EnvEntry] = {}
    issues: list[ConfigIssue] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key, value = _parse_line(stripped)
        except _LineError as err:
            found = "a line of another shape" if secret else repr(_shorten(stripped))
            if err.key:
                found = f"{found} for {err.key}" if not secret else found
            issues.append(
                ConfigIssue.mismatch(file, err.key or f"line {number}", err.expected, found, hint=err.hint, line=number)
            )
            continue
        if key in entries:
            first = entries[key].line
            issues.append(
                ConfigIssue(
                    file,
                    key,
                    f"set twice (lines {first} and {number})",
                    "keep one of them; the appliance does not guess which one you meant",
                    Severity.ERROR,
                    number,
                )
            )
            continue
        entries[key] = EnvEntry(key, value, number)
    return ParsedEnv(entries, issues)


def _parse_line(line: str) -> tuple[str, str]:
    if line.startswith("export ") or line.startswith("export\t"):
        line = line[len("export") :].lstrip()
    if "=" not in line:
        raise _LineError(
            "",
            "a line of the form KEY=value",
            "comment it out with '#' or add '=' and a value (KEY= for an empty value)",
        )
    key, _, rest = line.partition("=")
    key = key.strip()
    if not _KEY_RE.match(key):
        raise _LineError(
            "",
            "a setting name made of letters, digits and '_' (not starting with a digit) before '='",
        )
    rest = rest.lstrip()
    if rest.startswith('"'):
        return key, _double_quoted(key, rest)
    if rest.startswith("'"):
        return key, _single_quoted(key, rest)
    value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
    if '"' in value or "'" in value:
        raise _LineError(
            key,
            "a value in matching quotes, or one with no quotes at all",
            'wrap the whole value in double quotes and escape inner ones as \\"',
        )
    return key, value


def _double_quoted(key: str, rest: str) -> str:
    out: list[str] = []
    index = 1
    while index < len(rest):
        char = rest[index]
        if char == "\\" and index + 1 < len(rest):
            nxt = rest[index + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            index += 2
            continue
        if char == '"':
            _check_trailing(key, rest[index + 1 :])
            return "".join(out)
        out.append(char)
        index += 1
    raise _LineError(key, "a closing double quote on the same line", "multi-line values are not supported; use \\n")


def _single_quoted(key: str, rest: str) -> str:
    end = rest.find("'", 1)
    if end == -1:
        raise _LineError(key, "a closing single quote on the same line")
    _check_trailing(key, rest[end + 1 :])
    return rest[1:end]


def _check_trailing(key: str, trailing: str) -> None:
    trailing = trailing.strip()
    if trailing and not trailing.startswith("#"):
        raise _LineError(key, "nothing but a '# comment' after the closing quote")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

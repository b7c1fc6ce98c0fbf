"""Editing one line of a ``.env``-style file in place, atomically, keeping every other line and the mode."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.atomic import write_atomic

_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.,:;=*/@+-]*\Z")


def format_value(value: str) -> str:
    """``value`` as the dotenv parser reads it back: bare when safe, else double-quoted and escaped."""
    if _SAFE_VALUE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("$", "\\$")
    return f'"{escaped}"'


def _key_of(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    if stripped.startswith("export "):
        stripped = stripped[len("export ") :]
    return stripped.split("=", 1)[0].strip()


def set_value(path: Path, key: str, value: str, *, mode: int = 0o600) -> bool:
    """Set ``key`` to ``value`` (replacing its line, or appending one). Returns whether a line existed."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    new_line = f"{key}={format_value(value)}"
    replaced = False
    for index, line in enumerate(lines):
        if _key_of(line) == key:
            lines[index] = new_line
            replaced = True
            break
    if not replaced:
        lines.append(new_line)
    write_atomic(path, "\n".join(lines) + "\n", mode=mode)
    return replaced


def remove_key(path: Path, key: str, *, mode: int = 0o600) -> bool:
    """Delete ``key``'s line. Returns whether it was there."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if _key_of(line) != key]
    if len(kept) == len(lines):
        return False
    write_atomic(path, "\n".join(kept) + "\n", mode=mode)
    return True

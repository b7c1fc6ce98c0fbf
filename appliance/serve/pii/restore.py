"""Putting the user's values back where the model wrote placeholders: whole texts and streamed text.

Besides the exact ``<PERSON_1>`` the model may write small variations; these are restored too because each
still names exactly one placeholder: any letter case (``<person_1>``), a missing bracket (``PERSON_1>``,
``<PERSON_1``, ``PERSON_1``) and, when at least one bracket is there, spaces for underscores
(``<Person 1>``). A form without brackets must stand as a word of its own (``XPERSON_1`` and ``PERSON_12``
are not ``PERSON_1``).

Streaming: :class:`StreamRestorer` emits text as soon as it cannot be the start of a placeholder; it holds
back only the shortest tail from which a placeholder could still begin, restores placeholders split over
any number of chunks and flushes at the end. Property (tested): for any split of a text into chunks, the
concatenated output equals :func:`Restorer.restore` of the whole text. Works on ``str`` (never on bytes), so a
UTF-8 character is never split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product

from appliance.serve.pii.placeholders import PLACEHOLDER_RE

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    # (placeholder, needs a non-word character after it) when a variant ends here
    end: tuple[str, bool] | None = None


def variants(token: str) -> list[tuple[str, bool, bool]]:
    """The lower-case written forms of ``token``: (form, starts bare, ends bare)."""
    match = PLACEHOLDER_RE.fullmatch(token)
    if match is None:
        raise ValueError(f"not a placeholder: {token!r}")
    words = [*match.group(1).lower().split("_"), match.group(2)]
    forms = []
    for opening, closing in (("<", ">"), ("<", ""), ("", ">"), ("", "")):
        separators = ("_", " ") if (opening or closing) else ("_",)
        for seps in product(separators, repeat=len(words) - 1):
            core = words[0] + "".join(sep + word for sep, word in zip(seps, words[1:], strict=True))
            forms.append((opening + core + closing, not opening, not closing))
    return forms


class Restorer:
    """Placeholder → original value for one request; restores whole texts and makes stream restorers."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self.originals = dict(originals)
        self._escaped: Restorer | None = None
        self._root = _Node()
        self._bare_root = _Node()  # the forms that start without '<' (need a word boundary before them)
        starts = {"<"}
        for token in self.originals:
            for form, bare_start, bare_end in variants(token):
                node = self._bare_root if bare_start else self._root
                for char in form:
                    node = node.children.setdefault(char, _Node())
                node.end = (token, bare_end)
                starts.add(form[0])
        letters = "".join(sorted(re.escape(c) for c in starts))
        self._candidate = re.compile(f"[{letters}]", re.IGNORECASE) if self.originals else None

    def restore(self, text: str) -> str:
        """``text`` with every placeholder (and unambiguous variant) replaced by its original value."""
        out, consumed = self.scan(text, prev="", final=True)
        return out

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self)

    def json_escaped(self) -> Restorer:
        """The restorer for JSON text (tool call arguments): each value as it is written inside a JSON string,
        so a value with ``"``, ``\\`` or a line break keeps the arguments valid JSON."""
        if self._escaped is None:
            self._escaped = Restorer(
                {token: json.dumps(value, ensure_ascii=False)[1:-1] for token, value in self.originals.items()}
            )
        return self._escaped

    def scan(self, text: str, *, prev: str, final: bool) -> tuple[str, int]:
        """Restore ``text`` from its start; stop (unless ``final``) where a placeholder might begin but the text
        ends first. Returns the output and how many characters of ``text`` it covers. ``prev`` is the
        character just before ``text`` ("" at the very start)."""
        if self._candidate is None:
            return text, len(text)
        out: list[str] = []
        position = 0
        length = len(text)
        while position < length:
            found = self._candidate.search(text, position)
            if found is None:
                out.append(text[position:])
                return "".join(out), length
            start = found.start()
            out.append(text[position:start])
            before = text[start - 1] if start else prev
            result = self._match(text, start, before, final)
            if result is None:  # cannot be decided before more text arrives
                return "".join(out), start
            end, token = result
            if token is None:
                out.append(text[start])
                position = start + 1
            else:
                out.append(self.originals[token])
                position = end
        return "".join(out), length

    def _match(self, text: str, start: int, before: str, final: bool) -> tuple[int, str | None] | None:
        """The longest form at ``start``: (end, placeholder), (start + 1, None) when none, None to wait."""
        best: tuple[int, str | None] = (start + 1, None)
        roots = [self._root] if before and _is_word(before) else [self._root, self._bare_root]
        length = len(text)
        for root in roots:
            node = root
            index = start
            while True:
                if node.end is not None:
                    token, bare_end = node.end
                    if not bare_end or (index < length and not _is_word(text[index])) or (index == length and final):
                        if best[1] is None or index > best[0]:
                            best = (index, token)
                if index == length:
                    if node.children and not final:
                        return None
                    break
                child = node.children.get(text[index].translate(_ASCII_LOWER))
                if child is None:
                    break
                node = child
                index += 1
        return best


class StreamRestorer:
    """One stream of text (one choice's content, or one tool call's arguments) restored chunk by chunk."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._pending = ""
        self._prev = ""

    def feed(self, chunk: str) -> str:
        """What can be emitted now; the tail that may still become a placeholder is held back."""
        if not chunk:
            return ""
        text = self._pending + chunk
        out, consumed = self._restorer.scan(text, prev=self._prev, final=False)
        if consumed:
            self._prev = text[consumed - 1]
        self._pending = text[consumed:]
        return out

    def flush(self) -> str:
        """The end of the stream: whatever was held back, restored."""
        if not self._pending:
            return ""
        out, _ = self._restorer.scan(self._pending, prev=self._prev, final=True)
        self._pending = ""
        return out

    @property
    def holding(self) -> int:
        """Characters held back now."""
        return len(self._pending)

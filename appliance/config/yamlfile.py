"""Reading YAML with positions: syntax errors with line and column, duplicate keys, a line per key path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from appliance.config.issues import ConfigIssue

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its closest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def load_yaml(text: str, file: str) -> tuple[YamlDocument | None, list[ConfigIssue]]:
    """Parse ``text``; on a syntax error return no document and one issue with line and column."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown place"
        problem = err.problem or err.context or "invalid YAML"
        return None, [
            ConfigIssue(
                file,
                "(syntax)",
                f"invalid YAML at {where}: {problem}",
                "check indentation and quoting near that place",
                line=mark.line + 1 if mark else None,
            )
        ]
    except yaml.YAMLError as err:  # e.g. a reader error for control characters
        return None, [ConfigIssue(file, "(syntax)", f"invalid YAML: {err}")]
    if node is None:
        return YamlDocument(None), []
    doc = YamlDocument(None)
    issues: list[ConfigIssue] = []
    _walk(node, (), doc, issues, file)
    try:
        doc.data = yaml.safe_load(text)
    except yaml.YAMLError as err:  # composed fine but cannot be constructed (e.g. a bad timestamp)
        return None, [ConfigIssue(file, "(syntax)", f"invalid YAML value: {err}")]
    return doc, issues


def _walk(node: yaml.Node, path: Path_, doc: YamlDocument, issues: list[ConfigIssue], file: str) -> None:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.tag)
            line = key_node.start_mark.line + 1
            if key in seen:
                issues.append(
                    ConfigIssue(
                        file,
                        format_path((*path, key)),
                        f"set twice (lines {seen[key]} and {line})",
                        "keep one of them",
                        line=line,
                    )
                )
            seen[key] = line
            doc.lines[(*path, key)] = line
            _walk(value_node, (*path, key), doc, issues, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), doc, issues, file)


def format_path(path: Path_) -> str:
    """``("models", 1, "id")`` → ``models[1].id``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"

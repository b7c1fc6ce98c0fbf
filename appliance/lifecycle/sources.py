"""A model's local files, observed without reading their contents: where the directory is (on the host or in
the serve container), which files a manifest covers, which are pickle weights.

A ``source`` is local when it is an absolute path. The serve container sees the project's ``models/`` at
``/appliance/models`` (docker-compose.yml); on the host the same path is looked up under ``models/``, so
``validate`` and ``doctor`` check what the container will load.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

CONTAINER_MODELS = PurePosixPath("/appliance/models")  # docker-compose.yml: ./models:/appliance/models:ro
HOST_MODELS = "models"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
WEIGHT_SUFFIXES = frozenset({".safetensors", ".gguf"}) | PICKLE_SUFFIXES
# What a manifest leaves out: documentation and pictures of the model card; everything else (weights, configs,
# tokenizer files, chat templates, remote code) is covered.
_DOC_SUFFIXES = frozenset({".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf"})
_DOC_PREFIXES = ("README", "LICENSE", "NOTICE", "USE_POLICY")


_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def is_local(source: str) -> bool:
    return os.path.isabs(source)


def default_hub_cache() -> Path:
    """huggingface_hub's cache: HF_HUB_CACHE, else HF_HOME/hub (the serve image sets HF_HOME), else ~/.cache."""
    if explicit := os.environ.get("HF_HUB_CACHE"):
        return Path(explicit)
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def hub_snapshot_dir(source: str, revision: str | None, hub_cache: Path) -> Path | None:
    """Where the hub cache keeps ``org/name`` at a pinned commit; None unless ``revision`` is a full commit hash
    (a branch or tag may move to other files between two loads: nothing fixed to verify)."""
    if is_local(source) or not revision or not _COMMIT_RE.fullmatch(revision):
        return None
    return hub_cache / f"models--{source.replace('/', '--')}" / "snapshots" / revision


def local_model_dir(source: str, project_dir: Path | None = None) -> Path | None:
    """The directory a local ``source`` names as seen from here: itself when it exists, else its place under the
    project's ``models/`` when it is a serve-container path; None for a Hugging Face repo id."""
    if not is_local(source):
        return None
    path = Path(source)
    if path.exists():
        return path
    try:
        inside = PurePosixPath(source).relative_to(CONTAINER_MODELS)
    except ValueError:
        return path
    return (project_dir or Path.cwd()) / HOST_MODELS / inside


def covered(relative: PurePosixPath) -> bool:
    """Whether a manifest covers the file at ``relative`` (a path inside the model directory)."""
    if any(part.startswith(".") for part in relative.parts):
        return False  # .git, .cache (huggingface_hub's download metadata), editor files
    return relative.suffix.lower() not in _DOC_SUFFIXES and not relative.name.upper().startswith(_DOC_PREFIXES)


def is_pickle(relative: PurePosixPath) -> bool:
    return relative.suffix.lower() in PICKLE_SUFFIXES


def model_files(directory: Path) -> list[PurePosixPath]:
    """Every file a manifest covers, relative to ``directory``, sorted (symbolic links followed: the hub cache's
    snapshots link to blobs)."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            relative = PurePosixPath(Path(root, name).relative_to(directory).as_posix())
            if covered(relative) and Path(root, name).is_file():
                found.append(relative)
    return sorted(found)


@dataclass(frozen=True)
class SourceFacts:
    """What was seen of one model's local source (nothing is hashed to see it)."""

    source: str
    directory: Path | None  # None: not a local source (a Hugging Face repo id)
    exists: bool = False
    has_config: bool = False
    files: tuple[PurePosixPath, ...] = ()
    manifest_files: tuple[PurePosixPath, ...] | None = None  # None: no manifest yet (written on first load)
    pickle_files: tuple[PurePosixPath, ...] = field(default=())

    @property
    def uncovered(self) -> tuple[PurePosixPath, ...]:
        """Files here that the manifest does not list (a weight added or swapped in after it was written)."""
        if self.manifest_files is None:
            return ()
        listed = set(self.manifest_files)
        return tuple(f for f in self.files if f not in listed)

    @property
    def missing(self) -> tuple[PurePosixPath, ...]:
        """Files the manifest lists that are gone."""
        if self.manifest_files is None:
            return ()
        present = set(self.files)
        return tuple(f for f in self.manifest_files if f not in present)


def observe_source(
    source: str, *, project_dir: Path | None = None, manifest_files: tuple[PurePosixPath, ...] | None = None
) -> SourceFacts:
    directory = local_model_dir(source, project_dir)
    if directory is None:
        return SourceFacts(source, None)
    if not directory.is_dir():
        return SourceFacts(source, directory)
    files = tuple(model_files(directory))
    return SourceFacts(
        source,
        directory,
        exists=True,
        has_config=(directory / "config.json").is_file(),
        files=files,
        manifest_files=manifest_files,
        pickle_files=tuple(f for f in files if is_pickle(f)),
    )


@dataclass(frozen=True)
class SourceProblem:
    """One thing wrong with a local source: the model field it concerns, expected, found, and the fix."""

    field: str
    expected: str
    found: str
    fix: str


def _names(files: tuple[PurePosixPath, ...], limit: int = 5) -> str:
    shown = ", ".join(str(f) for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def source_problems(facts: SourceFacts, *, allow_pickle_weights: bool) -> list[SourceProblem]:
    """Pure: what is wrong with a model's local source, from what was seen of it."""
    if facts.directory is None:
        return []
    if not facts.exists:
        return [
            SourceProblem(
                "source",
                "a directory with the model's files",
                f"nothing at {facts.directory}",
                f"put the model under {HOST_MODELS}/ (the serve container sees it as "
                f"{CONTAINER_MODELS}/NAME) or fix the path",
            )
        ]
    problems = []
    if not facts.has_config:
        problems.append(
            SourceProblem(
                "source",
                "a config.json in the model directory",
                f"none in {facts.directory}",
                "copy the whole model directory (config.json, tokenizer files and weights)",
            )
        )
    if facts.pickle_files and not allow_pickle_weights:
        problems.append(
            SourceProblem(
                "allow_pickle_weights",
                "safetensors weights only",
                f"pickle files (they can run code when loaded): {_names(facts.pickle_files)}",
                "convert them to safetensors and remove them, or set allow_pickle_weights: "
                "true for this model if you trust where they came from",
            )
        )
    if facts.uncovered:
        problems.append(
            SourceProblem(
                "source",
                "every weight, config and tokenizer file in the model's manifest",
                f"files the manifest does not cover: {_names(facts.uncovered)}",
                "if they were added on purpose, delete the model's manifest (REGISTRY_MANIFEST_DIR)"
                " so it is written again on the next start; else remove them",
            )
        )
    if facts.missing:
        problems.append(
            SourceProblem(
                "source",
                "every file the model's manifest lists",
                f"missing: {_names(facts.missing)}",
                "restore them from the model's origin",
            )
        )
    return problems

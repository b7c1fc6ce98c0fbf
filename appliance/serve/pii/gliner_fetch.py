"""A GLiNER model directory, fetched at image build and pinned: repo at a commit, weights by SHA-256.

Stand-alone on purpose: compose/serve/Dockerfile runs this file (bind-mounted) in the dependency layer, before
the appliance itself is installed, so it imports only the standard library and, to fetch, huggingface_hub.
At run time :mod:`appliance.serve.pii.gliner` calls :func:`verify` and :func:`read_manifest` on the same
directory; nothing is downloaded then.

    python gliner_fetch.py --repo ORG/NAME --revision COMMIT --sha256 HEX --dest DIR [--backbone ORG/NAME@COMMIT]

The directory holds the repo's files at ``--revision``, and ``appliance-gliner.json`` (what was fetched). A
GLiNER repo without its encoder's tokenizer or config (older ones name the encoder, e.g.
microsoft/mdeberta-v3-base, and GLiNER would fetch it at load) needs ``--backbone``: that repo's tokenizer
and config are fetched into ``DIR/backbone`` and gliner_config.json points there, so loading is offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

MANIFEST = "appliance-gliner.json"
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")  # what GLiNER.from_pretrained loads, in its order
BACKBONE_DIR = "backbone"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spm.model",
    "sentencepiece.bpe.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


class GlinerWeightsError(ValueError):
    """A model directory that is not what was pinned (or not a GLiNER model at all)."""


def weights_file(directory: Path) -> Path:
    """The weights file GLiNER loads from ``directory``."""
    for name in WEIGHTS_FILES:
        if (directory / name).is_file():
            return directory / name
    raise GlinerWeightsError(f"no GLiNER weights ({' or '.join(WEIGHTS_FILES)}) in {directory}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(directory: Path, sha256: str) -> Path:
    """The weights file of ``directory`` when its SHA-256 is ``sha256``; :class:`GlinerWeightsError` otherwise."""
    if not SHA256_RE.match(sha256.lower()):
        raise GlinerWeightsError(f"expected a SHA-256 of 64 hex digits, found {sha256!r}")
    if not (directory / "gliner_config.json").is_file():
        raise GlinerWeightsError(f"no gliner_config.json in {directory}: not a GLiNER model directory")
    weights = weights_file(directory)
    found = sha256_of(weights)
    if found != sha256.lower():
        raise GlinerWeightsError(f"{weights.name} of {directory} has SHA-256 {found}, expected {sha256.lower()}")
    return weights


def write_manifest(directory: Path, repo: str, revision: str, sha256: str, backbone: str = "") -> None:
    record = {
        "repo": repo,
        "revision": revision,
        "sha256": sha256.lower(),
        "weights": weights_file(directory).name,
        "backbone": backbone,
    }
    (directory / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")


def read_manifest(directory: Path) -> dict[str, str]:
    """What the image build fetched into ``directory`` ({} when it was not fetched by :func:`fetch`)."""
    try:
        record = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def needs_backbone(directory: Path) -> str:
    """The encoder repo GLiNER would fetch at load ("" when the directory has what it needs)."""
    config = json.loads((directory / "gliner_config.json").read_text())
    complete = (directory / "tokenizer_config.json").is_file() and isinstance(config.get("encoder_config"), dict)
    return "" if complete else str(config.get("model_name") or "")


def point_at_backbone(directory: Path) -> None:
    """gliner_config.json names the local backbone directory instead of the encoder's repo."""
    path = directory / "gliner_config.json"
    config = json.loads(path.read_text())
    config["model_name"] = str(directory / BACKBONE_DIR)
    path.write_text(json.dumps(config, indent=2) + "\n")


def parse_pin(pin: str) -> tuple[str, str]:
    """``ORG/NAME@COMMIT`` → (repo, commit)."""
    repo, _, revision = pin.partition("@")
    if not REPO_RE.match(repo) or not COMMIT_RE.match(revision):
        raise GlinerWeightsError(f"expected ORG/NAME@<40-hex commit>, found {pin!r}")
    return repo, revision


def fetch(repo: str, revision: str, sha256: str, dest: Path, backbone: str = "") -> Path:
    """Download ``repo`` at ``revision`` into ``dest`` and verify it (the image build; needs the network)."""
    from huggingface_hub import snapshot_download

    if not REPO_RE.match(repo) or not COMMIT_RE.match(revision):
        raise GlinerWeightsError(f"expected a repo id and a 40-hex commit, found {repo!r} at {revision!r}")
    dest.mkdir(parents=True, exist_ok=True)
    snapshot_download(
        repo_id=repo, revision=revision, local_dir=dest, allow_patterns=["*.json", "*.txt", "*.model", *WEIGHTS_FILES]
    )
    verify(dest, sha256)
    wanted = needs_backbone(dest)
    if wanted and not backbone:
        raise GlinerWeightsError(
            f"{repo}@{revision} does not carry its encoder's tokenizer and config: GLiNER would "
            f"download {wanted} at load. Pin it: build arg GLINER_BACKBONE={wanted}@<commit> "
            "(setting PII_GLINER_BACKBONE)"
        )
    if wanted:
        backbone_repo, backbone_revision = parse_pin(backbone)
        snapshot_download(
            repo_id=backbone_repo,
            revision=backbone_revision,
            local_dir=dest / BACKBONE_DIR,
            allow_patterns=["config.json", *_TOKENIZER_FILES],
        )
        point_at_backbone(dest)
    write_manifest(dest, repo, revision, sha256, backbone if wanted else "")
    shutil.rmtree(dest / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--dest", required=True, type=Path)
    parser.add_argument("--backbone", default="")
    args = parser.parse_args(argv)
    try:
        fetch(args.repo, args.revision, args.sha256, args.dest, args.backbone)
    except GlinerWeightsError as err:
        print(f"GLiNER model: {err}", file=sys.stderr)
        return 2
    print(f"GLiNER model {args.repo}@{args.revision} in {args.dest}, weights verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())

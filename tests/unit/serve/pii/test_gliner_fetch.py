"""The image build's GLiNER fetch (gliner_fetch.py): the weights' digest is checked, the commit is the one asked
for, a repo without its encoder's tokenizer gets the pinned backbone or fails the build. The Hub cannot be
reached here: ``snapshot_download`` is replaced by a copy from local directories, everything else runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.serve.pii import gliner_fetch
from appliance.serve.pii.gliner_fetch import (
    MANIFEST,
    GlinerWeightsError,
    fetch,
    main,
    needs_backbone,
    read_manifest,
    sha256_of,
    verify,
)

REPO, COMMIT = "org/gliner-pii", "c" * 40
BACKBONE, BACKBONE_COMMIT = "microsoft/mdeberta-v3-base", "d" * 40


def write_repo(directory: Path, *, complete: bool = True) -> Path:
    directory.mkdir(parents=True)
    config = {"model_name": BACKBONE, "span_mode": "markerV0", "encoder_config": {"model_type": "deberta-v2"}}
    if not complete:
        config["encoder_config"] = None
    (directory / "gliner_config.json").write_text(json.dumps(config))
    (directory / "pytorch_model.bin").write_bytes(b"weights " * 1000)
    if complete:
        (directory / "tokenizer_config.json").write_text("{}")
    return directory


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Path]:
    """Repos at commits, served by a stand-in for huggingface_hub.snapshot_download (copies, leaves a .cache)."""
    repos: dict[tuple[str, str], Path] = {}

    def snapshot_download(repo_id: str, revision: str, local_dir: Path, allow_patterns: list[str]) -> str:
        source = repos[(repo_id, revision)]  # KeyError: not on this hub
        shutil.copytree(source, local_dir, dirs_exist_ok=True)
        (Path(local_dir) / ".cache").mkdir(exist_ok=True)
        return str(local_dir)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return repos


def test_verify_checks_the_weights_digest(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "m")
    digest = sha256_of(repo / "pytorch_model.bin")
    assert verify(repo, digest.upper()) == repo / "pytorch_model.bin"
    with pytest.raises(GlinerWeightsError, match=f"has SHA-256 {digest}, expected {'0' * 64}"):
        verify(repo, "0" * 64)
    with pytest.raises(GlinerWeightsError, match="64 hex digits"):
        verify(repo, "abc")
    (repo / "pytorch_model.bin").unlink()
    with pytest.raises(GlinerWeightsError, match="no GLiNER weights"):
        verify(repo, digest)
    with pytest.raises(GlinerWeightsError, match="not a GLiNER model directory"):
        verify(tmp_path, digest)


def test_fetch_pins_the_commit_and_records_it(tmp_path: Path, hub: dict) -> None:
    hub[(REPO, COMMIT)] = write_repo(tmp_path / "hub/a")
    digest = sha256_of(tmp_path / "hub/a/pytorch_model.bin")
    dest = fetch(REPO, COMMIT, digest, tmp_path / "image")
    assert read_manifest(dest) == {
        "repo": REPO,
        "revision": COMMIT,
        "sha256": digest,
        "weights": "pytorch_model.bin",
        "backbone": "",
    }
    assert not (dest / ".cache").exists() and needs_backbone(dest) == ""
    with pytest.raises(GlinerWeightsError, match="40-hex commit"):
        fetch(REPO, "main", digest, tmp_path / "other")


def test_fetch_fails_on_other_weights(tmp_path: Path, hub: dict) -> None:
    hub[(REPO, COMMIT)] = write_repo(tmp_path / "hub/a")
    with pytest.raises(GlinerWeightsError, match="has SHA-256"):
        fetch(REPO, COMMIT, "0" * 64, tmp_path / "image")
    assert not (tmp_path / "image" / MANIFEST).exists()


def test_a_repo_without_its_tokenizer_needs_the_pinned_backbone(tmp_path: Path, hub: dict) -> None:
    hub[(REPO, COMMIT)] = write_repo(tmp_path / "hub/a", complete=False)
    backbone = tmp_path / "hub/backbone"
    backbone.mkdir()
    (backbone / "config.json").write_text('{"model_type": "deberta-v2"}')
    (backbone / "tokenizer_config.json").write_text("{}")
    hub[(BACKBONE, BACKBONE_COMMIT)] = backbone
    digest = sha256_of(tmp_path / "hub/a/pytorch_model.bin")
    with pytest.raises(GlinerWeightsError, match=f"would download {BACKBONE} at load.*GLINER_BACKBONE"):
        fetch(REPO, COMMIT, digest, tmp_path / "first")
    dest = fetch(REPO, COMMIT, digest, tmp_path / "image", f"{BACKBONE}@{BACKBONE_COMMIT}")
    config = json.loads((dest / "gliner_config.json").read_text())
    assert config["model_name"] == str(dest / "backbone") and (dest / "backbone/tokenizer_config.json").is_file()
    assert read_manifest(dest)["backbone"] == f"{BACKBONE}@{BACKBONE_COMMIT}"


def test_the_command_line_fails_the_build_with_the_reason(
    tmp_path: Path, hub: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    hub[(REPO, COMMIT)] = write_repo(tmp_path / "hub/a")
    args = ["--repo", REPO, "--revision", COMMIT, "--dest", str(tmp_path / "image")]
    assert main([*args, "--sha256", "0" * 64]) == 2
    assert "GLiNER model:" in capsys.readouterr().err
    assert main([*args, "--sha256", sha256_of(tmp_path / "hub/a/pytorch_model.bin")]) == 0


def test_the_build_step_runs_this_file_alone() -> None:
    source = Path(gliner_fetch.__file__).read_text()
    assert "from appliance" not in source and "import appliance" not in source  # bind-mounted before install

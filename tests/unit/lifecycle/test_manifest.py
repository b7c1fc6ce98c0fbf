"""Manifests: which files they cover, their digest, the store, and the pure comparison."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

import pytest

from appliance.lifecycle.manifest import FileDigest, Manifest, ManifestStore, build_manifest, compare, revision_of
from appliance.lifecycle.sources import covered, is_pickle, model_files

NOW = "2026-12-04T12:00:00.000+00:00"


def test_every_weight_config_and_tokenizer_file_is_covered_docs_and_hidden_files_are_not(model_dir: Path) -> None:
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "modeling_tiny.py").write_text("# remote code is covered too")
    assert [str(p) for p in model_files(model_dir)] == [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "sub/modeling_tiny.py",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert covered(PurePosixPath("vocab.txt")) and covered(PurePosixPath("merges.txt"))
    assert not covered(PurePosixPath("LICENSE")) and not covered(PurePosixPath(".git/HEAD"))
    assert is_pickle(PurePosixPath("pytorch_model.bin")) and is_pickle(PurePosixPath("x.PT"))
    assert not is_pickle(PurePosixPath("model.safetensors"))


def test_manifest_sizes_hashes_and_a_digest_that_ignores_where_the_files_are(model_dir: Path, tmp_path: Path) -> None:
    manifest = build_manifest(model_dir, source=str(model_dir), revision=None, created_at=NOW)
    weights = (model_dir / "model.safetensors").read_bytes()
    assert manifest.files["model.safetensors"] == FileDigest(len(weights), hashlib.sha256(weights).hexdigest())
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for name in manifest.files:
        (copy / name).write_bytes((model_dir / name).read_bytes())
    other = build_manifest(copy, source=str(copy), revision=None, created_at="later")
    assert other.digest == manifest.digest and manifest.digest.startswith("sha256:")
    assert manifest.revision is None


def test_revision_from_the_pin_or_the_hub_snapshot() -> None:
    commit = "a" * 40
    assert revision_of(Path(f"/cache/models--org--m/snapshots/{commit}"), None) == commit
    assert revision_of(Path(f"/cache/models--org--m/snapshots/{commit}"), "v1.0") == "v1.0"
    assert revision_of(Path("/appliance/models/tiny"), None) is None


def test_compare_names_the_file_and_both_digests() -> None:
    manifest = Manifest("/m", None, {"a.safetensors": FileDigest(3, "11"), "config.json": FileDigest(2, "22")}, NOW)
    found = {"a.safetensors": FileDigest(3, "99"), "extra.safetensors": FileDigest(1, "33")}
    assert [m.describe() for m in compare(manifest, found)] == [
        "a.safetensors: expected sha256:11, found sha256:99",
        "config.json: expected sha256:22, found no file",
        "extra.safetensors: not in the manifest (found sha256:33)",
    ]
    assert compare(manifest, dict(manifest.files)) == []


def test_store_round_trip_atomic_and_refuses_edited_or_foreign_manifests(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    source = "/appliance/models/tiny"
    assert store.load(source) is None
    manifest = build_manifest(model_dir, source=source, revision="main", created_at=NOW)
    path = store.save(manifest)
    assert path.name.startswith("tiny-") and path.suffix == ".json"
    assert store.save(manifest) == path and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert store.load(source) == manifest
    data = json.loads(path.read_text())
    data["files"]["model.safetensors"]["sha256"] = "0" * 64  # edited by hand: the digest no longer matches
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="the manifest was edited"):
        store.load(source)
    other = store.path_for("/other")
    other.write_text(json.dumps(manifest.to_json()))
    with pytest.raises(ValueError, match="written for '/appliance/models/tiny'"):
        store.load("/other")
    other.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        store.load("/other")

"""Hugging Face repo ids pinned to a commit: sealed after their first download, verified before every later
load; unpinned ones are not verified (a branch can move) and say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigFiles, load_config
from appliance.lifecycle.integrity import IntegrityError, ModelToVerify, seal_downloads, verify_model
from appliance.lifecycle.manifest import ManifestStore
from appliance.lifecycle.sources import default_hub_cache, hub_snapshot_dir
from appliance.lifecycle.start import verify_and_record
from appliance.registry.store import RegistryStore
from appliance.serve.builder import engine_kwargs
from tests.helpers import make_config_dir, set_line
from tests.unit.lifecycle.conftest import write_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NOW = "2026-12-04T12:00:00.000+00:00"


def test_snapshot_dir_only_for_a_full_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub_snapshot_dir("org/m", COMMIT, tmp_path) == tmp_path / "models--org--m" / "snapshots" / COMMIT
    assert hub_snapshot_dir("org/m", "main", tmp_path) is None and hub_snapshot_dir("org/m", None, tmp_path) is None
    assert hub_snapshot_dir("/local/path", COMMIT, tmp_path) is None
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", "/var/cache/huggingface")
    assert default_hub_cache() == Path("/var/cache/huggingface/hub")
    monkeypatch.setenv("HF_HUB_CACHE", "/elsewhere")
    assert default_hub_cache() == Path("/elsewhere")


def test_first_download_is_sealed_then_verified(tmp_path: Path) -> None:
    hub, store = tmp_path / "hub", ManifestStore(tmp_path / "manifests")
    model = ModelToVerify("m", "org/m", COMMIT, False)
    unpinned = verify_model(ModelToVerify("m", "org/m", "main", False), store, now=NOW, hub_cache=hub)
    assert (unpinned.manifest_digest, unpinned.pending_download) == ("", None)
    first = verify_model(model, store, now=NOW, hub_cache=hub)
    assert first.manifest_digest == "" and first.pending_download == hub_snapshot_dir("org/m", COMMIT, hub)
    assert seal_downloads([first], store, now=NOW) == {}, "nothing downloaded yet"
    snapshot = write_model(first.pending_download)  # type: ignore[arg-type]  # what the engine downloaded
    sealed = seal_downloads([first], store, now=NOW)
    assert list(sealed) == ["m"] and store.load(f"org/m@{COMMIT}").revision == COMMIT  # type: ignore[union-attr]
    assert seal_downloads([first], store, now=NOW) == {}, "sealed once"
    again = verify_model(model, store, now=NOW, hub_cache=hub)
    assert again.manifest_digest == sealed["m"] and again.directory == snapshot and not again.written
    (snapshot / "config.json").write_text('{"architectures": ["Evil"]}')
    with pytest.raises(IntegrityError, match="config.json: expected sha256:"):
        verify_model(model, store, now=NOW, hub_cache=hub)


def test_the_registry_learns_the_digest_of_the_first_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_config_dir(tmp_path)
    set_line(tmp_path / ".env", "ACCELERATOR", "cpu")
    (tmp_path / "models.yaml").write_text(f"models:\n  - id: m\n    source: org/m\n    revision: '{COMMIT}'\n")
    config = load_config(
        ConfigFiles(env=tmp_path / ".env", secrets=tmp_path / ".secrets", models=tmp_path / "models.yaml"), gpu_count=0
    )
    hub = tmp_path / "hub"
    args = {spec.id: engine_kwargs(spec) for spec in config.models}
    recorder = verify_and_record(config, args, hub_cache=hub)
    write_model(hub_snapshot_dir("org/m", COMMIT, hub))  # type: ignore[arg-type]  # downloaded while loading
    recorder.finish(True, "running")
    store = RegistryStore.open(config.settings.registry_url)
    [entry] = store.entries()
    assert entry.manifest_digest.startswith("sha256:") and entry.revision == COMMIT
    second = verify_and_record(config, args, hub_cache=hub)  # the next start: verified, the same entry
    assert second.entries["m"].id == entry.id and len(store.entries()) == 1

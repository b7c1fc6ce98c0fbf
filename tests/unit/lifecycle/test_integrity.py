"""Before every load: a manifest on first sight, then every file compared; refusals name the file and both
digests; pickle weights need allow_pickle_weights; every model is checked before one error lists them all."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.lifecycle.integrity import IntegrityError, ModelToVerify, verify_model, verify_models
from appliance.lifecycle.manifest import ManifestStore
from tests.unit.lifecycle.conftest import write_model

NOW = "2026-12-04T12:00:00.000+00:00"


def model(source: Path | str, model_id: str = "tiny", *, pickle: bool = False) -> ModelToVerify:
    return ModelToVerify(model_id, str(source), None, pickle)


def test_first_sight_writes_the_manifest_then_every_load_verifies(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    first = verify_model(model(model_dir), store, now=NOW)
    assert first.written and first.manifest_path is not None and first.manifest_path.exists()
    for _ in range(3):  # idempotent: the same files verify again and again, nothing rewritten
        again = verify_model(model(model_dir), store, now="later")
        assert (again.written, again.manifest_digest) == (False, first.manifest_digest)
    assert store.load(str(model_dir)).created_at == NOW  # type: ignore[union-attr]


def test_a_changed_weight_refuses_the_load_naming_file_expected_and_found(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    weights = model_dir / "model.safetensors"
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    verify_model(model(model_dir), store, now=NOW)
    tampered = bytearray(weights.read_bytes())
    tampered[100] ^= 0xFF  # one bit of one byte, same size
    weights.write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError) as err:
        verify_model(model(model_dir), store, now=NOW)
    message = str(err.value)
    found = hashlib.sha256(bytes(tampered)).hexdigest()
    assert f"model.safetensors: expected sha256:{expected}, found sha256:{found}" in message
    assert "model tiny:" in message and "delete the manifest" in message


def test_added_and_removed_files_are_refused(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    verify_model(model(model_dir), store, now=NOW)
    (model_dir / "model-00002.safetensors").write_bytes(b"swapped in")
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError) as err:
        verify_model(model(model_dir), store, now=NOW)
    assert "model-00002.safetensors: not in the manifest" in str(err.value)
    assert "tokenizer.json: expected sha256:" in str(err.value) and "found no file" in str(err.value)
    (model_dir / "README.md").write_text("docs may change")  # not covered: no refusal for it


def test_pickle_weights_need_allow_pickle_weights(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(IntegrityError, match=r"pickle files .*pytorch_model\.bin.*allow_pickle_weights"):
        verify_model(model(model_dir), store, now=NOW)
    assert not store.path_for(str(model_dir)).exists(), "nothing is pinned for a refused model"
    assert verify_model(model(model_dir, pickle=True), store, now=NOW).written


def test_missing_source_or_config_is_refused(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    with pytest.raises(IntegrityError, match="nothing at"):
        verify_model(model(tmp_path / "absent"), store, now=NOW)
    bare = write_model(tmp_path / "bare")
    (bare / "config.json").unlink()
    with pytest.raises(IntegrityError, match="expected a config.json in the model directory"):
        verify_model(model(bare), store, now=NOW)


def test_a_hub_repo_id_is_not_verified_and_says_so(tmp_path: Path) -> None:
    result = verify_model(model("Qwen/Qwen2.5-0.5B-Instruct"), ManifestStore(tmp_path / "m"), now=NOW)
    assert (result.directory, result.manifest_digest, result.written) == (None, "", False)


def test_every_model_is_checked_then_one_error_lists_them(model_dir: Path, tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "manifests")
    good = write_model(tmp_path / "good")
    models = [model(tmp_path / "absent", "a"), model(good, "b"), model(model_dir, "c")]
    (model_dir / "x.pt").write_bytes(b"pickle")
    with pytest.raises(IntegrityError) as err:
        verify_models(models, store, now=NOW)
    assert [m for m, _why in err.value.failures] == ["a", "c"]
    assert store.path_for(str(good)).exists(), "the good model was still checked (and pinned)"


def test_an_unwritable_manifest_dir_loads_unverified_with_a_warning(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    result = verify_model(model(model_dir), ManifestStore(blocker / "manifests"), now=NOW)
    assert not result.written and result.manifest_path is None and result.manifest_digest.startswith("sha256:")
    assert "this load is not verified" in caplog.text

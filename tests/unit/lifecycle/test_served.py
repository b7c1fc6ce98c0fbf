"""What production serves after model changes, kept for a restart under the same configuration
(appliance.lifecycle.served): the pure decision, the file, the serve head's part (the port's generations written
after a change; a restarted head starts from them, or, under another configuration, from its files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.commands.serve import _restored
from appliance.config import ConfigFiles, load_config
from appliance.config.models import ModelSpec
from appliance.lifecycle.served import (
    ServedRecord,
    configured_digest,
    read_record,
    record_of,
    record_path,
    restore,
    write_record,
)
from appliance.serve.applier import record_served, served_models
from tests.unit.serve.test_generations import config, port_with  # noqa: F401 (config: the fixture, a and b)

pytestmark = pytest.mark.unit

A = ModelSpec.model_validate({"id": "a", "source": "/m/a"})
B = ModelSpec.model_validate({"id": "b", "source": "/m/b"})


def test_the_record_of_this_configuration_is_what_serve_starts() -> None:
    changed = A.model_copy(update={"max_model_len": 256})
    added = ModelSpec.model_validate({"id": "c", "source": "/m/c"})
    record = record_of(configured_digest([A, B]), [changed, B, added])
    restored = restore([A, B], record)
    assert restored.used and restored.models == (changed, B, added)
    assert "a (as last changed)" in restored.why and "c (added)" in restored.why and "b (" not in restored.why
    without_b = restore([A, B], record_of(configured_digest([A, B]), [A]))  # a deploy removed b
    assert without_b.used and without_b.models == (A,) and without_b.why.endswith("no longer served: b")


def test_another_configuration_wins_and_its_old_record_is_stale() -> None:
    record = record_of(configured_digest([A]), [A.model_copy(update={"max_model_len": 256})])
    restored = restore([A, B], record)  # models.yaml edited (b added) and `make up`: the file's models
    assert (restored.used, restored.stale, restored.models) == (False, True, (A, B))
    # the same models laid out otherwise (a comment, another order of keys) are the same configuration
    assert configured_digest([ModelSpec.model_validate({"source": "/m/a", "id": "a"})]) == configured_digest([A])


@pytest.mark.parametrize(
    "models",
    [[{"id": "a"}], [], [{"id": "a", "source": "/m/a"}, {"id": "a", "source": "/m/x"}]],
    ids=["invalid-spec", "no-models", "a-model-twice"],
)
def test_a_record_that_is_not_a_set_of_valid_models_is_not_used(models: list[dict[str, Any]]) -> None:
    restored = restore([A], ServedRecord(configured_digest([A]), tuple(models)))
    assert not restored.used and not restored.stale and restored.models == (A,)


def test_the_file_round_trips_and_a_broken_one_reads_as_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "registry" / "served.json"
    assert read_record(path) is None
    record = record_of("d1", [A, B])
    write_record(path, record)
    assert read_record(path) == record and not list(path.parent.glob(".served-*"))  # no temporary file left
    for text in ("{", json.dumps({"version": 99, "base": "d1", "models": []}), json.dumps({"version": 1})):
        path.write_text(text)
        assert read_record(path) is None
    assert "served.json not used" in caplog.text


def test_a_restarted_head_serves_what_the_changes_left_until_the_configuration_changes(
    config: Any,  # noqa: F811 (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The head's applier records its port's generations after a change (a switched model, an added one); a
    head started again from the same files serves them; after an edit of models.yaml it serves the file and
    removes the record."""
    started, served = _restored(config)
    assert started.models == config.models and served == (
        record_path(config.settings),
        configured_digest(config.models),
    )
    port, _runs, ingress = port_with(config)
    port.start("a", "LLMServer:a@5", config.model("a").model_dump(mode="json") | {"max_model_len": 256})
    port.stop("LLMServer:a")  # switched: a@5 serves a
    ingress.ingress_serves.add("c")
    port.start("c", "LLMServer:c@6", {"id": "c", "source": "/m/c"})
    port.add("c", "LLMServer:c@6")
    assert [(m.id, m.max_model_len) for m in served_models(config, port.generations)] == [
        ("a", 256),
        ("b", None),
        ("c", None),
    ]
    port.remove("b", "LLMServer:b")  # (the fake ingress already answers that it does not serve b)
    assert [m.id for m in served_models(config, port.generations)] == ["a", "c"]
    record_served(served, config, port.generations)

    again, served_again = _restored(config)  # the supervisor restarts serve: same files
    assert [(m.id, m.max_model_len) for m in again.models] == [("a", 256), ("c", None)]
    assert served_again == served  # the record keeps naming the configuration, not what it restored
    assert (
        "serving the model changes applied since the configuration: a (as last changed), c (added); no longer served: b"
    ) in capsys.readouterr().err

    (Path("models.yaml")).write_text("models:\n  - id: a\n    source: /m/a\n")  # edited, then `make up`
    edited = load_config(ConfigFiles(models=Path("models.yaml")), gpu_count=0)
    fresh, _served = _restored(edited)
    assert fresh.models == edited.models and not served[0].exists()

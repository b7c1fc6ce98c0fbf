"""``python -m appliance validate`` over the shipped examples and many broken variants of them.

Each broken variant must exit 2 and name the file and key (``FILE:KEY:``) with what was expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_config_dir, run_cli, set_line

GOOD_HASH = "a" * 64


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    return make_config_dir(tmp_path, with_models=True)


def test_shipped_examples_are_valid(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "0")
    os.chmod(ROOT / ".secrets.example", 0o644)  # as git checks it out
    for extra in ([], ["--models", "models.example.yaml"]):
        code, out, err = run_cli(capsys, "validate", "--env", ".env.example", "--secrets", ".secrets.example", *extra)
        assert code == 0, err
        assert "configuration valid" in err


def test_valid_config_with_json_output(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "validate", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["ok"] is True
    assert report["models"] == ["qwen2.5-0.5b-instruct"]
    assert report["models_from"] == "models.yaml"
    assert report["accelerator"] == "cpu"


Mutation = Callable[[Path], None]


def env(key: str, value: str) -> Mutation:
    return lambda d: set_line(d / ".env", key, value)


def secret(key: str, value: str) -> Mutation:
    return lambda d: set_line(d / ".secrets", key, value)


def models(text: str) -> Mutation:
    return lambda d: (d / "models.yaml").write_text(text)


def both(*mutations: Mutation) -> Mutation:
    def apply(d: Path) -> None:
        for mutation in mutations:
            mutation(d)

    return apply


def append(name: str, text: str) -> Mutation:
    return lambda d: (d / name).write_text((d / name).read_text() + text)


ONE_MODEL = "models:\n  - id: m1\n    source: org/m1\n"

# (variant id, mutation, locations that must be named, words that must appear)
BROKEN: list[tuple[str, Mutation, list[str], list[str]]] = [
    ("port-not-int", env("HTTP_PORT", "eighty"), [".env:HTTP_PORT"], ["expected an integer", "'eighty'"]),
    ("port-range", env("HTTP_PORT", "70000"), [".env:HTTP_PORT"], ["1 to 65535", "70000"]),
    ("port-empty", env("HTTPS_PORT", ""), [".env:HTTPS_PORT"], ["an empty value"]),
    ("ports-clash", env("HTTPS_PORT", "80"), [".env:HTTPS_PORT"], ["different from HTTP_PORT"]),
    (
        "typo-did-you-mean",
        append(".env", "NGINX_RATE_LIMT_RPM=5\n"),
        [".env:NGINX_RATE_LIMT_RPM"],
        ["unknown setting; did you mean NGINX_RATE_LIMIT_RPM?"],
    ),
    ("burst-zero", env("NGINX_RATE_LIMIT_BURST", "0"), [".env:NGINX_RATE_LIMIT_BURST"], [">= 1"]),
    (
        "body-size-overflow",
        env("MAX_REQUEST_BODY_MB", "99999999999999"),
        [".env:MAX_REQUEST_BODY_MB"],
        ["at most 65536", "99999999999999"],
    ),
    ("acme-needs-domain-and-email", env("TLS_MODE", "acme"), [".env:DOMAIN", ".env:ACME_EMAIL"], ["TLS_MODE=acme"]),
    (
        "acme-bad-email",
        both(env("TLS_MODE", "acme"), env("DOMAIN", "llm.example.com"), env("ACME_EMAIL", "nope")),
        [".env:ACME_EMAIL"],
        ["an e-mail address"],
    ),
    ("provided-needs-paths", env("TLS_MODE", "provided"), [".env:TLS_CERT_PATH", ".env:TLS_KEY_PATH"], ["provided"]),
    ("tls-mode-choice", env("TLS_MODE", "letsencrypt"), [".env:TLS_MODE"], ["'self-signed', 'acme' or 'provided'"]),
    ("bool", env("AUTH_ENABLED", "maybe"), [".env:AUTH_ENABLED"], ["true or false", "'maybe'"]),
    ("malformed-line", append(".env", "just some words\n"), [".env:line "], ["KEY=value"]),
    ("unterminated-quote", append(".env", 'DOMAIN="llm.example.com\n'), [".env:DOMAIN"], ["closing double quote"]),
    ("duplicate-key", append(".env", "HTTP_PORT=8080\n"), [".env:HTTP_PORT"], ["set twice"]),
    ("fraction", env("MODEL_GPU_MEMORY_UTILIZATION", "1.5"), [".env:MODEL_GPU_MEMORY_UTILIZATION"], ["at most 1"]),
    ("nan", env("SERVE_STREAM_BATCHING_MS", "nan"), [".env:SERVE_STREAM_BATCHING_MS"], ["finite"]),
    ("pii-entity-typo", env("PII_ENTITIES", "PERSON,EMAIL"), [".env:PII_ENTITIES"], ["did you mean EMAIL_ADDRESS?"]),
    ("domain-with-scheme", env("DOMAIN", "https://llm.example.com/"), [".env:DOMAIN"], ["a DNS name"]),
    (
        "model-id-chars",
        both(lambda d: (d / "models.yaml").unlink(), env("MODEL_ID", "my model/v1")),
        [".env:MODEL_ID"],
        ["letters, digits"],
    ),
    ("cors-origin", env("CORS_ALLOWED_ORIGINS", "example.com"), [".env:CORS_ALLOWED_ORIGINS"], ["https://"]),
    ("gpu-mode-without-gpu", env("ACCELERATOR", "gpu"), [".env:ACCELERATOR"], ["at least one NVIDIA GPU"]),
    ("datadog-key-shape", secret("DATADOG_API_KEY", "not-a-real-key"), [".secrets:DATADOG_API_KEY"], ["32"]),
    (
        "short-password",
        secret("GRAFANA_ADMIN_PASSWORD", "short"),
        [".secrets:GRAFANA_ADMIN_PASSWORD"],
        ["at least 12 characters"],
    ),
    (
        "secret-typo",
        append(".secrets", "GRAFANA_PASSWORD=whatever-it-is\n"),
        [".secrets:GRAFANA_PASSWORD"],
        ["did you mean GRAFANA_ADMIN_PASSWORD?"],
    ),
    (
        "api-key-shape",
        append(".secrets", "API_KEY_BOB=sha256:abc;role=user;models=*\n"),
        [".secrets:API_KEY_BOB"],
        ["64 lower-case hex"],
    ),
    (
        "api-key-role",
        append(".secrets", f"API_KEY_BOB=sha256:{GOOD_HASH};role=root;models=*\n"),
        [".secrets:API_KEY_BOB"],
        ["role=admin or role=user"],
    ),
    (
        "api-key-unserved-model",
        append(".secrets", f"API_KEY_BOB=sha256:{GOOD_HASH};role=user;models=gpt-9\n"),
        [".secrets:API_KEY_BOB"],
        ["gpt-9"],
    ),
    ("yaml-syntax", models("models:\n  - id: a\n   source: b\n"), ["models.yaml:(syntax)"], ["line 3, column 4"]),
    (
        "yaml-duplicate-key",
        models("models:\n  - id: a\n    source: b\n    id: c\n"),
        ["models.yaml:models[0].id"],
        ["set twice (lines 2 and 4)"],
    ),
    ("yaml-empty", models(""), ["models.yaml:(top level)"], ["non-empty 'models:' list"]),
    ("yaml-models-not-list", models("models: qwen\n"), ["models.yaml:models"], ["non-empty 'models:' list"]),
    ("yaml-unknown-top-key", models(ONE_MODEL + "modles: []\n"), ["models.yaml:modles"], ["did you mean models?"]),
    (
        "model-unknown-key",
        models(ONE_MODEL + "    replicass: 2\n"),
        ["models.yaml:models[0].replicass"],
        ["did you mean replicas?"],
    ),
    ("model-missing-source", models("models:\n  - id: m1\n"), ["models.yaml:models[0].source"], ["required"]),
    (
        "model-ids-unique",
        models(ONE_MODEL + "  - id: M1\n    source: org/other\n"),
        ["models.yaml:models[1].id"],
        ["unique model id"],
    ),
    (
        "model-bad-id",
        models("models:\n  - id: org/name\n    source: org/name\n"),
        ["models.yaml:models[0].id"],
        ["letters, digits"],
    ),
    (
        "pipeline-needs-nodes",
        models(ONE_MODEL + "    pipeline_parallel_size: 2\n"),
        ["models.yaml:models[0].pipeline_parallel_size"],
        ["more than one node"],
    ),
    (
        "replicas-and-autoscaling",
        models(ONE_MODEL + "    replicas: 2\n    autoscaling: {max_replicas: 3}\n"),
        ["models.yaml:models[0].replicas"],
        ["either replicas or autoscaling"],
    ),
    (
        "autoscaling-min-max",
        models(ONE_MODEL + "    autoscaling: {min_replicas: 3, max_replicas: 2}\n"),
        ["models.yaml:models[0].autoscaling"],
        ["min_replicas <= max_replicas"],
    ),
    (
        "standby-with-scale-to-zero",
        models(ONE_MODEL + "    replicas_standby: 1\n    autoscaling: {min_replicas: 0, max_replicas: 2}\n"),
        ["models.yaml:models[0].replicas_standby"],
        ["scale to zero"],
    ),
    (
        "standby-negative",
        models(ONE_MODEL + "    replicas_standby: -1\n"),
        ["models.yaml:models[0].replicas_standby"],
        ["expected an integer >= 0, found -1"],
    ),
    ("model-dtype", models(ONE_MODEL + "    dtype: fp8\n"), ["models.yaml:models[0].dtype"], ["bfloat16"]),
    (
        "engine-kwargs-shadow-safety",
        models(ONE_MODEL + "    engine_kwargs: {trust_remote_code: true, load_format: pt}\n"),
        ["models.yaml:models[0].engine_kwargs.load_format", "models.yaml:models[0].engine_kwargs.trust_remote_code"],
        ["set the model's 'allow_pickle_weights' instead", "set the model's 'trust_remote_code' instead"],
    ),
    (
        "request-limits-unknown",
        models(ONE_MODEL + "    request_limits: {max_nn: 2}\n"),
        ["models.yaml:models[0].request_limits.max_nn"],
        ["max_n"],
    ),
    (
        "pooling-on-generate",
        models(ONE_MODEL + "    pooling: {pooling_type: MEAN}\n"),
        ["models.yaml:models[0].pooling"],
        ["only with task embed or score"],
    ),
    ("task-unknown", models(ONE_MODEL + "    task: rerank\n"), ["models.yaml:models[0].task"], ["embed"]),
    (
        "pooling-type",
        models(ONE_MODEL + "    task: embed\n    pooling: {pooling_type: SUM}\n"),
        ["models.yaml:models[0].pooling.pooling_type"],
        ["MEAN"],
    ),
    (
        "tool-parser-typo",
        models(ONE_MODEL + "    tool_call_parser: herme\n"),
        ["models.yaml:models[0].tool_call_parser"],
        ["did you mean 'hermes'"],
    ),
    (
        "auto-tools-without-parser",
        models(ONE_MODEL + "    enable_auto_tool_choice: true\n"),
        ["models.yaml:models[0].enable_auto_tool_choice"],
        ["expected a tool_call_parser"],
    ),
    (
        "tools-on-embed-model",
        models(ONE_MODEL + "    task: embed\n    tool_call_parser: hermes\n"),
        ["models.yaml:models[0].tool_call_parser"],
        ["tool calling needs task: generate"],
    ),
    (
        "engine-kwargs-shadow-task",
        models(ONE_MODEL + "    engine_kwargs: {runner: pooling}\n"),
        ["models.yaml:models[0].engine_kwargs.runner"],
        ["set the model's 'task' instead"],
    ),
    ("missing-env-file", lambda d: (d / ".env").unlink(), [".env:(file)"], ["copy .env.example"]),
    (
        "secrets-is-a-directory",
        lambda d: ((d / ".secrets").unlink(), (d / ".secrets").mkdir()),
        [".secrets:(file)"],
        ["a directory"],
    ),
    ("not-utf8", lambda d: (d / ".env").write_bytes(b"DOMAIN=caf\xe9\n"), [".env:(file)"], ["UTF-8"]),
]


@pytest.mark.parametrize(("mutate", "locations", "words"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_variant_names_file_and_key(
    cfg: Path, capsys: pytest.CaptureFixture[str], mutate: Mutation, locations: list[str], words: list[str]
) -> None:
    mutate(cfg)
    code, out, err = run_cli(capsys, "validate")
    assert code == 2, err
    assert "Traceback" not in out + err
    for location in locations:
        assert f"{location}" in err, f"{location!r} not named in:\n{err}"
    for word in words:
        assert word in err, f"{word!r} not in:\n{err}"


def test_every_error_is_reported_not_just_the_first(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for mutate, *_ in (b[1:] for b in BROKEN[:6]):
        mutate(cfg)
    code, _, err = run_cli(capsys, "validate")
    assert code == 2
    for location in (".env:HTTP_PORT", ".env:HTTPS_PORT", ".env:NGINX_RATE_LIMT_RPM", ".env:NGINX_RATE_LIMIT_BURST"):
        assert location in err


def test_tensor_parallel_beyond_this_nodes_gpus(cfg: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "2")
    models(ONE_MODEL + "    tensor_parallel_size: 4\n")(cfg)
    code, _, err = run_cli(capsys, "validate")
    assert code == 2
    assert (
        "models.yaml:models[0].tensor_parallel_size: expected tensor_parallel_size × pipeline_parallel_size <= 2" in err
    )
    set_line(cfg / ".env", "RAY_WORKER_NODES", "1")  # worker nodes bring more GPUs
    assert run_cli(capsys, "validate")[0] == 0


def test_pipeline_stages_across_nodes_need_gpu_mode(cfg: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's CPU build refuses its Ray executor ('current platform cpu does not support ray.', checked with
    vLLM 0.32 here), and only that executor puts pipeline stages on other nodes."""
    models(ONE_MODEL + "    pipeline_parallel_size: 2\n")(cfg)
    set_line(cfg / ".env", "RAY_WORKER_NODES", "1")
    code, _, err = run_cli(capsys, "validate")
    assert code == 2
    assert "models.yaml:models[0].pipeline_parallel_size: expected 1 in CPU mode, found 2" in err
    assert "replicas on several nodes" in err
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "1")  # auto mode with a GPU: GPU mode, the stages may span nodes
    assert run_cli(capsys, "validate")[0] == 0


def test_explicit_models_file_must_exist(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "validate", "--models", "nowhere.yaml")
    assert code == 2
    assert "nowhere.yaml:(file): expected the file to exist" in err


def test_warnings_do_not_fail(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_line(cfg / ".env", "AUTH_ENABLED", "false")
    set_line(cfg / ".env", "MODEL_ID", "ignored-because-models-yaml")
    (cfg / ".secrets").chmod(0o644)
    code, out, err = run_cli(capsys, "validate", "--json")
    assert code == 0
    flagged = {(i["file"], i["key"]) for i in json.loads(out)["issues"]}
    assert flagged == {(".env", "AUTH_ENABLED"), (".env", "MODEL_ID"), (".secrets", "(file)")}


def test_the_ray_dashboard_switched_on_is_a_warning_naming_the_key(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "validate", "--json")
    assert code == 0 and "RAY_DASHBOARD_ENABLED" not in out
    set_line(cfg / ".env", "RAY_DASHBOARD_ENABLED", "true")
    code, out, _ = run_cli(capsys, "validate", "--json")
    assert code == 0
    issue = next(i for i in json.loads(out)["issues"] if i["key"] == "RAY_DASHBOARD_ENABLED")
    assert issue["file"] == ".env" and issue["severity"] == "warning" and "Ray job" in issue["message"]


def test_a_model_pinned_to_a_worker_needs_worker_nodes(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (cfg / "models.yaml").read_text()
    (cfg / "models.yaml").write_text(text.replace("    source:", "    nodes: [head, gpu-b]\n    source:", 1))
    code, _, err = run_cli(capsys, "validate")
    assert code == 2 and "models[0].nodes: expected only this node ('head')" in err and "gpu-b" in err
    set_line(cfg / ".env", "RAY_WORKER_NODES", "1")
    assert run_cli(capsys, "validate")[0] == 0


def test_auto_mode_says_when_the_gpus_could_not_be_counted(
    cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_GPU_COUNT", "unknown")  # what a failing or slow nvidia-smi gives: no count
    code, out, _ = run_cli(capsys, "validate", "--json")
    report = json.loads(out)
    assert code == 0 and report["accelerator"] == "cpu"
    [issue] = [i for i in report["issues"] if i["key"] == "ACCELERATOR"]
    assert issue["severity"] == "warning" and "could not be counted" in issue["message"]
    set_line(cfg / ".env", "ACCELERATOR", "cpu")
    code, out, _ = run_cli(capsys, "validate", "--json")
    assert not [i for i in json.loads(out)["issues"] if i["key"] == "ACCELERATOR"], "an explicit choice asks nothing"


def test_secret_values_never_printed(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_values = ["Sup3rSecretGrafanaPw!", "0123456789abcdef0123456789abcdeX", "hf_tokenvalue_XYZ"]
    set_line(cfg / ".secrets", "GRAFANA_ADMIN_PASSWORD", secret_values[0])
    set_line(cfg / ".secrets", "DATADOG_API_KEY", secret_values[1])  # wrong shape: reported, not shown
    set_line(cfg / ".secrets", "HF_TOKEN", secret_values[2])
    append(".secrets", f"DASHBOARD_PASSWORD={secret_values[0]}\nDASHBOARD_PASSWORD={secret_values[2]}\n")(cfg)
    append(".secrets", f"GARBAGE {secret_values[0]}\n")(cfg)
    append(".secrets", f"API_KEY_X=sha256:{secret_values[1]};role=user;models=*\n")(cfg)
    set_line(cfg / ".env", "DOMAIN", secret_values[2])  # a secret pasted into .env is scrubbed as well
    for args in (["validate"], ["validate", "--json"]):
        code, out, err = run_cli(capsys, *args)
        assert code == 2
        for value in secret_values:
            assert value not in out + err
        assert "DATADOG_API_KEY" in out + err


def test_a_tool_parser_without_auto_tool_choice_is_a_warning(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg / "models.yaml").write_text(ONE_MODEL + "    tool_call_parser: hermes\n")
    code, out, _ = run_cli(capsys, "validate", "--json")
    assert code == 0
    issues = [i for i in json.loads(out)["issues"] if i["key"] == "models[0].tool_call_parser"]
    assert len(issues) == 1 and issues[0]["severity"] == "warning" and "enable_auto_tool_choice" in issues[0]["message"]
    (cfg / "models.yaml").write_text(ONE_MODEL + "    tool_call_parser: hermes\n    enable_auto_tool_choice: true\n")
    code, out, _ = run_cli(capsys, "validate", "--json")
    assert code == 0 and not [i for i in json.loads(out)["issues"] if "tool" in i["key"]]

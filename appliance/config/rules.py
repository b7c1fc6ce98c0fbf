"""Rules across fields and files. Pure: typed config in, issues out (no I/O, no environment)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.config.issues import ConfigIssue, Severity, did_you_mean
from appliance.config.models import ModelSpec
from appliance.config.parsers import TOOL_CALL_PARSERS
from appliance.config.secrets import ALL_MODELS, Role, Secrets
from appliance.config.settings import HIDDEN_PASSWORD, Accelerator, PiiDevice, PiiNer, Settings, TlsMode
from appliance.lifecycle.sources import SourceFacts, source_problems


@dataclass(frozen=True)
class Where:
    """How to name places in the three sources: file labels and line lookups."""

    env_file: str
    secrets_file: str
    models_file: str  # the .env file when models come from MODEL_*
    env_line: Callable[[str], int | None]
    secrets_line: Callable[[str], int | None]
    model_line: Callable[[tuple[Any, ...]], int | None]
    models_from_yaml: bool

    def env(self, key: str, message: str, hint: str = "", severity: Severity = Severity.ERROR) -> ConfigIssue:
        return ConfigIssue(self.env_file, key, message, hint, severity, self.env_line(key))

    def secret(self, key: str, message: str, hint: str = "", severity: Severity = Severity.ERROR) -> ConfigIssue:
        return ConfigIssue(self.secrets_file, key, message, hint, severity, self.secrets_line(key))

    def model(
        self, index: int, field: str, message: str, hint: str = "", severity: Severity = Severity.ERROR
    ) -> ConfigIssue:
        if self.models_from_yaml:
            key = f"models[{index}].{field}"
            return ConfigIssue(
                self.models_file, key, message, hint, severity, self.model_line(("models", index, field))
            )
        env_key = "MODEL_" + field.upper()
        return ConfigIssue(self.env_file, env_key, message, hint, severity, self.env_line(env_key))


def resolve_accelerator(setting: Accelerator, gpu_count: int | None) -> Accelerator:
    """``auto`` becomes ``gpu`` when GPUs were seen, else ``cpu``; explicit choices stay."""
    if setting is not Accelerator.AUTO:
        return setting
    return Accelerator.GPU if gpu_count else Accelerator.CPU


def check_rules(
    settings: Settings,
    secrets: Secrets,
    models: list[tuple[int, ModelSpec]],
    *,
    where: Where,
    gpu_count: int | None,
    sources: Mapping[int, SourceFacts] | None = None,
) -> list[ConfigIssue]:
    """``sources``: what the loader saw of each model's local files, by the model's index (none: not checked)."""
    issues: list[ConfigIssue] = []
    issues += _tls_rules(settings, where)
    issues += _port_rules(settings, where)
    issues += _cluster_rules(settings, where)
    issues += _model_rules(settings, models, where, gpu_count)
    issues += _security_rules(settings, secrets, models, where)
    issues += _registry_rules(settings, where)
    issues += _gliner_rules(settings, where, gpu_count)
    issues += model_source_rules(models, sources or {}, where)
    return issues


def _tls_rules(s: Settings, where: Where) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if s.tls_mode is TlsMode.ACME:
        if not s.domain:
            issues.append(
                where.env(
                    "DOMAIN",
                    "expected a DNS name with TLS_MODE=acme, found an empty value",
                    "Let's Encrypt issues certificates for public names only; set DOMAIN or use TLS_MODE=self-signed",
                )
            )
        elif "." not in s.domain:
            issues.append(
                where.env(
                    "DOMAIN",
                    f"expected a public DNS name with TLS_MODE=acme, found {s.domain!r}",
                    "use TLS_MODE=self-signed for a local name",
                )
            )
        if not s.acme_email:
            issues.append(
                where.env(
                    "ACME_EMAIL",
                    "expected an e-mail with TLS_MODE=acme, found an empty value",
                    "Let's Encrypt sends expiry warnings there",
                )
            )
    if s.tls_mode is TlsMode.PROVIDED:
        for key, value in (("TLS_CERT_PATH", s.tls_cert_path), ("TLS_KEY_PATH", s.tls_key_path)):
            if not value:
                issues.append(
                    where.env(
                        key,
                        "expected a file path with TLS_MODE=provided, found an empty value",
                        "point it at your PEM file, or use TLS_MODE=self-signed",
                    )
                )
    if s.acme_staging and s.acme_directory_url:
        issues.append(
            where.env(
                "ACME_STAGING",
                "has no effect when ACME_DIRECTORY_URL is set",
                "the directory URL wins; unset one of them",
                Severity.WARNING,
            )
        )
    return issues


def _cluster_rules(s: Settings, where: Where) -> list[ConfigIssue]:
    # imported here: appliance.cluster.network reads Settings, whose package imports this module
    from appliance.cluster.network import problems as cluster_problems

    issues = [where.env(p.key, p.message, p.hint) for p in cluster_problems(s)]
    if s.ray_worker_nodes > 0 and not s.ray_cluster_interface:
        issues.append(
            where.env(
                "RAY_WORKER_NODES",
                f"expects {s.ray_worker_nodes} worker node(s), but no cluster network is set: none can reach this head",
                "set RAY_CLUSTER_INTERFACE, RAY_CLUSTER_SUBNET and RAY_CLUSTER_BIND (docs/guides/scale-out.md)",
                Severity.WARNING,
            )
        )
    return issues


def _port_rules(s: Settings, where: Where) -> list[ConfigIssue]:
    if s.http_port == s.https_port:
        return [
            where.env(
                "HTTPS_PORT",
                f"expected a port different from HTTP_PORT, found {s.https_port} for both",
                "HTTP and HTTPS need their own ports, e.g. 80 and 443",
            )
        ]
    return []


def _model_rules(
    s: Settings, models: list[tuple[int, ModelSpec]], where: Where, gpu_count: int | None
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, int] = {}
    for index, model in models:
        folded = model.id.lower()
        if folded in seen:
            issues.append(
                where.model(
                    index,
                    "id",
                    f"expected a unique model id, found {model.id!r} again (first at models[{seen[folded]}])",
                    "ids are case-insensitive; rename one",
                )
            )
        seen.setdefault(folded, index)
        if model.replicas is not None and model.autoscaling is not None:
            issues.append(
                where.model(
                    index,
                    "replicas",
                    "expected either replicas or autoscaling, found both",
                    "remove one; autoscaling wins nothing by guessing",
                )
            )
        if model.autoscaling and model.autoscaling.min_replicas > model.autoscaling.max_replicas:
            issues.append(
                where.model(
                    index,
                    "autoscaling",
                    f"expected min_replicas <= max_replicas, found "
                    f"{model.autoscaling.min_replicas} > {model.autoscaling.max_replicas}",
                )
            )
        if model.replicas_standby and model.autoscaling and model.autoscaling.min_replicas == 0:
            issues.append(
                where.model(
                    index,
                    "replicas_standby",
                    f"expected 0 with autoscaling.min_replicas 0 (scale to zero), found {model.replicas_standby}",
                    "standby replicas are kept warm, which scaling to zero would not: drop one of the two",
                )
            )
        if model.pipeline_parallel_size > 1 and s.ray_worker_nodes == 0:
            issues.append(
                where.model(
                    index,
                    "pipeline_parallel_size",
                    f"expected 1 on a single node, found {model.pipeline_parallel_size}",
                    "pipeline parallelism needs more than one node: set RAY_WORKER_NODES to the "
                    "worker nodes that will join, or use tensor_parallel_size instead",
                )
            )
        others = sorted({n for n in model.nodes or [] if n != s.ray_node_name})
        if others and s.ray_worker_nodes == 0:
            issues.append(
                where.model(
                    index,
                    "nodes",
                    f"expected only this node ({s.ray_node_name!r}) while no worker "
                    f"node is configured, found {', '.join(others)}",
                    "set RAY_WORKER_NODES to the workers that will join (python -m appliance "
                    "join on each), or remove the names; RAY_NODE_NAME names this node",
                )
            )
        issues += _engine_kwargs_rules(index, model, where)
        issues += _task_rules(index, model, where)
        if model.trust_remote_code:
            issues.append(
                where.model(
                    index,
                    "trust_remote_code",
                    "is on: the model repo's own Python code will run",
                    "turn it on only for a repo you trust, pinned by revision",
                    Severity.WARNING,
                )
            )
    issues += _gpu_rules(s, models, where, gpu_count)
    issues += _cpu_pipeline_rules(s, models, where, gpu_count)
    return issues


def _cpu_pipeline_rules(
    s: Settings, models: list[tuple[int, ModelSpec]], where: Where, gpu_count: int | None
) -> list[ConfigIssue]:
    """Pipeline stages across nodes need vLLM's Ray executor, which vLLM 0.32 refuses on the CPU platform
    ("current platform cpu does not support ray."); on CPU Ray Serve LLM runs vLLM's multiprocessing executor,
    every stage of a replica on one node. (Without worker nodes the rule in :func:`_model_rules` speaks.)"""
    if s.ray_worker_nodes == 0 or resolve_accelerator(s.accelerator, gpu_count) is not Accelerator.CPU:
        return []
    return [
        where.model(
            index,
            "pipeline_parallel_size",
            f"expected 1 in CPU mode, found {model.pipeline_parallel_size}",
            "vLLM's CPU build cannot spread a replica's pipeline stages over nodes (its Ray executor "
            "refuses the CPU platform); use replicas on several nodes instead (replicas, nodes), or GPU mode",
        )
        for index, model in models
        if model.pipeline_parallel_size > 1
    ]


# Engine arguments that a model's own field sets (and whose safety rules apply to that field only).
_TYPED_ENGINE_ARGS = {
    "trust_remote_code": "trust_remote_code",
    "load_format": "allow_pickle_weights",
    "tensor_parallel_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "dtype": "dtype",
    "max_model_len": "max_model_len",
    "revision": "revision",
    "tokenizer_revision": "revision",
    "model": "source",
    "tokenizer": "source",
    "runner": "task",
    "convert": "task",
    "pooler_config": "pooling",
    "tool_call_parser": "tool_call_parser",
    "enable_auto_tool_choice": "enable_auto_tool_choice",
}


def _engine_kwargs_rules(index: int, model: ModelSpec, where: Where) -> list[ConfigIssue]:
    """``engine_kwargs`` may not set what a typed field sets: that would slip past the field's rules."""
    issues = []
    for name in sorted(set(model.engine_kwargs) & set(_TYPED_ENGINE_ARGS)):
        field = _TYPED_ENGINE_ARGS[name]
        issues.append(
            where.model(
                index,
                f"engine_kwargs.{name}",
                f"expected no '{name}' in engine_kwargs, found one",
                f"set the model's '{field}' instead: it is validated (and flagged when unsafe)",
            )
        )
    return issues


def _task_rules(index: int, model: ModelSpec, where: Where) -> list[ConfigIssue]:
    """Pooling options only on pooling models, tool calling only on generating ones, a parser vLLM knows."""
    issues = []
    if model.pooling is not None and model.task == "generate":
        issues.append(
            where.model(
                index,
                "pooling",
                "expected pooling options only with task embed or score, found them on a generate model",
                "set task: embed (or score), or remove pooling",
            )
        )
    if model.task != "generate":
        for field in ("tool_call_parser", "enable_auto_tool_choice"):
            if getattr(model, field):
                issues.append(
                    where.model(
                        index,
                        field,
                        f"expected no {field} on a {model.task} model, found one",
                        "tool calling needs task: generate",
                    )
                )
    parser = model.tool_call_parser
    if parser is not None and parser not in TOOL_CALL_PARSERS:
        close = did_you_mean(parser, TOOL_CALL_PARSERS)
        issues.append(
            where.model(
                index,
                "tool_call_parser",
                f"expected one of vLLM's tool-call parsers, found {parser!r}",
                f"did you mean {close!r}?"
                if close
                else "see vLLM's tool calling docs for the parser of your model's chat template",
            )
        )
    if parser is not None and not model.enable_auto_tool_choice and model.task == "generate":
        issues.append(
            where.model(
                index,
                "tool_call_parser",
                "is set without enable_auto_tool_choice: vLLM then "
                "loads no parser and refuses every tool_choice but 'none'",
                "add enable_auto_tool_choice: true",
                Severity.WARNING,
            )
        )
    if model.enable_auto_tool_choice and parser is None:
        issues.append(
            where.model(
                index,
                "enable_auto_tool_choice",
                "expected a tool_call_parser with it, found none",
                "set tool_call_parser to the parser of the model's chat template (vLLM refuses "
                "auto tool choice without one)",
            )
        )
    return issues


def _gpu_rules(
    s: Settings, models: list[tuple[int, ModelSpec]], where: Where, gpu_count: int | None
) -> list[ConfigIssue]:
    if gpu_count is None:
        if s.accelerator is Accelerator.AUTO:  # resolve_accelerator picks CPU: say so, it may be a slow driver
            return [
                where.env(
                    "ACCELERATOR",
                    "is auto, but the GPUs could not be counted (nvidia-smi failed or did "
                    "not answer in time): CPU mode is used",
                    "check 'nvidia-smi -L'; set ACCELERATOR=gpu (or cpu) to choose without asking it",
                    Severity.WARNING,
                )
            ]
        return []
    if s.accelerator is Accelerator.GPU and gpu_count == 0:
        return [
            where.env(
                "ACCELERATOR",
                "expected at least one NVIDIA GPU with ACCELERATOR=gpu, found none",
                "check 'nvidia-smi', or set ACCELERATOR=cpu (or auto)",
            )
        ]
    if resolve_accelerator(s.accelerator, gpu_count) is not Accelerator.GPU or s.ray_worker_nodes > 0:
        return []
    issues = []
    for index, model in models:
        if model.gpus_per_replica > gpu_count:
            issues.append(
                where.model(
                    index,
                    "tensor_parallel_size",
                    f"expected tensor_parallel_size × pipeline_parallel_size <= {gpu_count} "
                    f"(GPUs on this node), found {model.gpus_per_replica}",
                    f"lower tensor_parallel_size to at most {gpu_count}, or add Ray worker nodes (RAY_WORKER_NODES)",
                )
            )
    return issues


# Settings that are unsafe in production: judged once, by _security_rules, as warnings; doctor shows these in
# its unsafe-flags check (and not again among the config check's warnings).
UNSAFE_SETTINGS = ("AUTH_ENABLED", "PII_FAIL_OPEN")


def _security_rules(
    s: Settings, secrets: Secrets, models: list[tuple[int, ModelSpec]], where: Where
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if not s.auth_enabled:
        issues.append(
            where.env(
                "AUTH_ENABLED",
                "is false: anyone who reaches the API can use every model",
                "set AUTH_ENABLED=true unless the network itself is trusted",
                Severity.WARNING,
            )
        )
    elif not secrets.api_keys:
        issues.append(
            where.secret(
                "API_KEY_*",
                "no API key yet: every request will be refused with 401",
                "python -m appliance keys create admin --role admin",
                Severity.WARNING,
            )
        )
    if s.pii_enabled and s.pii_fail_open:
        issues.append(
            where.env(
                "PII_FAIL_OPEN",
                "is true: unmasked text reaches the model when the analyzer fails",
                "set PII_FAIL_OPEN=false to answer 503 instead",
                Severity.WARNING,
            )
        )
    if s.ray_dashboard_enabled:
        issues.append(
            where.env(
                "RAY_DASHBOARD_ENABLED",
                "is true: whoever passes the dashboard login and Ray's "
                "token can submit a Ray job, which runs code in serve",
                "switch it on only while you need it; see docs/guides/stack.md",
                Severity.WARNING,
            )
        )
    model_ids = {m.id for _index, m in models}
    for record in secrets.api_keys:
        if record.role is Role.ADMIN:
            continue
        missing = [m for m in record.models if m != ALL_MODELS and m not in model_ids]
        if missing:
            issues.append(
                where.secret(
                    record.env_key,
                    f"expected models that are served, found {', '.join(missing)}",
                    "served: "
                    + ", ".join(sorted(model_ids))
                    + f"; fix with python -m appliance keys create {record.name} --force ...",
                )
            )
    return issues


def _registry_rules(s: Settings, where: Where) -> list[ConfigIssue]:
    if HIDDEN_PASSWORD in s.registry_url:
        return [
            where.env(
                "REGISTRY_URL",
                "expected no password in the URL, found one (not shown)",
                "put it in ~/.pgpass or the file PGPASSFILE names (libpq reads it there)",
            )
        ]
    return []


def _gliner_rules(s: Settings, where: Where, gpu_count: int | None) -> list[ConfigIssue]:
    """PII_NER=gliner: a repo id is pinned by commit and weights digest; cuda needs a GPU; labels map to masked
    types."""
    if not (s.pii_enabled and s.pii_ner is PiiNer.GLINER):
        return []
    issues = []
    if not s.pii_gliner_model.startswith("/"):
        if not s.pii_gliner_revision:
            issues.append(
                where.env(
                    "PII_GLINER_REVISION",
                    f"expected the commit of {s.pii_gliner_model} to fetch at build, found nothing",
                    "the 40-hex commit from the repo's history on the Hub",
                )
            )
        if not s.pii_gliner_sha256:
            issues.append(
                where.env(
                    "PII_GLINER_SHA256",
                    "expected the SHA-256 of the model's weights file, found nothing",
                    "the file's SHA-256 as the Hub lists it (model.safetensors or pytorch_model.bin) at that commit",
                )
            )
    if (
        s.pii_gliner_device is PiiDevice.CUDA
        and gpu_count is not None
        and resolve_accelerator(s.accelerator, gpu_count) is Accelerator.CPU
    ):
        issues.append(
            where.env(
                "PII_GLINER_DEVICE",
                "is cuda, but serve runs without a GPU (ACCELERATOR)",
                "set PII_GLINER_DEVICE=cpu (slow; not measured) or PII_NER=spacy",
            )
        )
    unmasked = sorted({entry.partition("=")[2].strip() for entry in s.pii_gliner_labels} - set(s.pii_entities))
    if unmasked:
        issues.append(
            where.env(
                "PII_GLINER_LABELS",
                f"maps labels to {', '.join(unmasked)}, which PII_ENTITIES does "
                "not mask: those labels are not asked for",
                "add the types to PII_ENTITIES or drop the labels",
                Severity.WARNING,
            )
        )
    return issues


def model_source_rules(
    models: list[tuple[int, ModelSpec]], sources: Mapping[int, SourceFacts], where: Where
) -> list[ConfigIssue]:
    """A local source that is missing, has no config.json, holds pickle weights it may not load, or files its
    manifest does not cover. Warnings: the host may see the files differently from the serve container, which
    refuses such a load itself (appliance.lifecycle.integrity); ``doctor`` reports them as errors."""
    issues = []
    for index, model in models:
        facts = sources.get(index)
        if facts is None:
            continue
        for problem in source_problems(facts, allow_pickle_weights=model.allow_pickle_weights):
            issues.append(
                where.model(
                    index,
                    problem.field,
                    f"expected {problem.expected}, found {problem.found}",
                    problem.fix,
                    Severity.WARNING,
                )
            )
    return issues

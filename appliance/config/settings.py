"""The non-secret settings of ``.env``: one typed model, one documented field per setting.

Field names are the lower-case form of the ``.env`` keys (``HTTP_PORT`` → ``http_port``). The description
and group of every field are the single source of ``.env.example`` and of the reference table in
``docs/guides/configurator.md`` (``python -m appliance config example`` / ``config reference``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from appliance.config.fields import (
    EMAIL_RE,
    HOSTNAME_RE,
    Dtype,
    Fraction,
    ModelId,
    NodeName,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    UnitInterval,
    expected,
    parse_bool_strict,
    setting,
    split_csv,
)
from appliance.config.issues import did_you_mean
from appliance.registry.db import DEFAULT_REGISTRY_URL, parse_registry_url
from appliance.serve.pii.gliner_fetch import COMMIT_RE, REPO_RE, SHA256_RE

Bool = Annotated[bool, BeforeValidator(parse_bool_strict)]


HIDDEN_PASSWORD = ":<redacted>@"


def _hide_url_password(value: Any) -> Any:
    """A password written into a URL is dropped here, before anything can show it; a rule reports that there
    was one (``appliance.config.rules``: pydantic's errors would quote the value as it was written)."""
    try:
        password = urlsplit(value).password if isinstance(value, str) else None
    except ValueError:
        return value
    return value.replace(f":{password}@", HIDDEN_PASSWORD, 1) if password else value


UrlWithoutPassword = Annotated[str, BeforeValidator(_hide_url_password)]
CsvList = Annotated[list[str], BeforeValidator(split_csv)]

# Presidio's predefined recognizers (presidio-analyzer 2.2) and the spaCy NER entities it maps.
PII_ENTITY_NAMES = (
    "AU_ABN",
    "AU_ACN",
    "AU_MEDICARE",
    "AU_TFN",
    "CREDIT_CARD",
    "CRYPTO",
    "DATE_TIME",
    "EMAIL_ADDRESS",
    "ES_NIE",
    "ES_NIF",
    "FI_PERSONAL_IDENTITY_CODE",
    "IBAN_CODE",
    "IN_AADHAAR",
    "IN_PAN",
    "IN_PASSPORT",
    "IN_VEHICLE_REGISTRATION",
    "IN_VOTER",
    "IP_ADDRESS",
    "IT_DRIVER_LICENSE",
    "IT_FISCAL_CODE",
    "IT_IDENTITY_CARD",
    "IT_PASSPORT",
    "IT_VAT_CODE",
    "LOCATION",
    "MEDICAL_LICENSE",
    "NRP",
    "ORGANIZATION",
    "PERSON",
    "PHONE_NUMBER",
    "PL_PESEL",
    "SG_NRIC_FIN",
    "SG_UEN",
    "UK_NHS",
    "UK_NINO",
    "URL",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "US_PASSPORT",
    "US_SSN",
)
# PII_NER=gliner: the labels GLiNER is asked for and the entity types they mask as (appliance.serve.pii.gliner)
DEFAULT_GLINER_LABELS = (
    ("person", "PERSON"),
    ("street address", "LOCATION"),
    ("address", "LOCATION"),
    ("city", "LOCATION"),
    ("country", "LOCATION"),
    ("postal code", "LOCATION"),
    ("location", "LOCATION"),
)
DEFAULT_PII_ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "LOCATION",
)


class TlsMode(StrEnum):
    SELF_SIGNED = "self-signed"
    ACME = "acme"
    PROVIDED = "provided"


class Accelerator(StrEnum):
    AUTO = "auto"
    GPU = "gpu"
    CPU = "cpu"


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    TEXT = "text"


class PiiEmbeddings(StrEnum):
    MASK = "mask"
    REFUSE = "refuse"


class PiiNer(StrEnum):
    SPACY = "spacy"
    GLINER = "gliner"


class PiiDevice(StrEnum):
    CUDA = "cuda"
    CPU = "cpu"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


MODEL = "Model (used when there is no models.yaml)"
HARDWARE = "Hardware, Ray and Serve"
EDGE = "Domain, ports and TLS"
LIMITS = "Rate limits and request size"
SECURITY = "API keys and audit"
PII = "PII masking"
LOGS = "Logging"
OBSERVE = "Dashboards, metrics and alerts"
DATADOG = "Datadog"
STACK = "Stack"
SUPERVISOR = "Supervisor: watchdog, renewals, log rotation"
REGISTRY = "Model registry and integrity"
BACKUP = "Backups"
BATCH = "Batch API"


class Settings(BaseModel):
    """Everything in ``.env``. Types only; rules across fields live in ``appliance.config.rules``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=str.upper,
        validate_by_alias=True,
        validate_by_name=True,
        allow_inf_nan=False,
    )

    # --- model shorthand ---------------------------------------------------------------------------
    model_id: ModelId = setting(
        "qwen2.5-0.5b-instruct",
        "Name clients use in the OpenAI 'model' field (letters, digits, '.', '_', '-'; at most 64).",
        MODEL,
    )
    model_source: NonEmptyStr = setting(
        "Qwen/Qwen2.5-0.5B-Instruct", "Hugging Face repo id or a local path of the weights.", MODEL
    )
    model_revision: str = setting(
        "", "Git revision (commit hash, tag or branch) of the weights to pin; empty = the default branch.", MODEL
    )
    model_max_model_len: PositiveInt = setting(
        4096, "Longest context (prompt + output tokens) the engine accepts.", MODEL
    )
    model_gpu_memory_utilization: Fraction = setting(
        0.90, "Share of each GPU's memory vLLM may use (0 < x <= 1; on CPU: of the KV-cache budget).", MODEL
    )
    model_dtype: Dtype = setting(
        "auto", "Weights/activations dtype.", MODEL, choices=("auto", "bfloat16", "float16", "float32")
    )
    model_tensor_parallel_size: PositiveInt = setting(1, "GPUs one replica of the model is split across.", MODEL)
    model_max_tokens_cap: PositiveInt = setting(
        2048, "Largest max_tokens a request may ask for; larger requests are capped.", MODEL
    )

    # --- hardware, Ray, Serve ----------------------------------------------------------------------
    accelerator: Accelerator = setting(
        Accelerator.AUTO,
        "Run engines on NVIDIA GPUs or on the CPU build of vLLM; auto picks gpu when nvidia-smi sees one.",
        HARDWARE,
        choices=tuple(a.value for a in Accelerator),
    )
    ray_worker_nodes: NonNegativeInt = setting(
        0, "Ray worker nodes that will join this head node (needed for pipeline parallelism).", HARDWARE
    )
    ray_node_name: NodeName = setting(
        "head",
        "This machine's name in the Ray cluster (the label appliance.io/node); models.yaml `nodes:` "
        "pins a model to named nodes.",
        HARDWARE,
    )
    ray_cluster_interface: str = setting(
        "",
        "Host network interface on the private network that joins this machine's Ray node to the others "
        "(e.g. eth1); empty = single node, Ray reachable only inside the stack. docs/guides/scale-out.md.",
        HARDWARE,
    )
    ray_cluster_subnet: str = setting(
        "", "Subnet of that network in CIDR form (e.g. 10.50.0.0/24); set with RAY_CLUSTER_INTERFACE.", HARDWARE
    )
    ray_cluster_bind: str = setting(
        "",
        "This node's own Ray address on that network: a free address in RAY_CLUSTER_SUBNET that Docker gives "
        "the serve (or worker) container, the only address Ray's ports are reachable at from other machines. "
        "Never a wildcard (0.0.0.0).",
        HARDWARE,
    )
    ray_num_cpus: NonNegativeInt = setting(
        0, "Logical CPUs Ray schedules with; 0 = max(8, cores) so the ingress fits beside engines.", HARDWARE
    )
    ray_worker_niceness: Annotated[int, Field(ge=0, le=19)] = setting(
        15,
        "Niceness of Ray's worker processes: the engines, the ingress and PII replicas (0-19; Ray's own "
        "default is 15). 0 puts them level with nginx and Prometheus; measured on 2 cores it did not help "
        "(docs/guides/operator.md, Performance).",
        HARDWARE,
    )
    ray_dashboard_enabled: Bool = setting(
        False,
        "Run the Ray dashboard, at /ray/ through Nginx (off by default: whoever reaches it can submit a Ray "
        "job, which runs code in serve). When on it asks for Ray's own token (data/run/serve/ray_auth_token), not "
        "the dashboard password; Ray's metrics reach Prometheus either way.",
        HARDWARE,
    )
    serve_ingress_replicas: PositiveInt = setting(1, "Replicas of the appliance ingress deployment.", HARDWARE)
    serve_max_ongoing_requests: PositiveInt = setting(
        256, "Requests one engine replica takes at once before Serve queues them.", HARDWARE
    )
    serve_http_port: int = setting(
        8000, "Port of the serving path's HTTP inside the stack (Nginx forwards to it).", HARDWARE
    )
    serve_direct_ingress: Bool = setting(
        True,
        "Serve HTTP straight from the ingress replica (Ray Serve's throughput-optimized mode: no proxy hop, "
        "gRPC between replicas; lower TTFT, higher tok/s). Applies with SERVE_INGRESS_REPLICAS=1; false = through "
        "Serve's HTTP proxy.",
        HARDWARE,
    )
    serve_stream_batching_ms: NonNegativeFloat = setting(
        50.0,
        "Streamed tokens sent between Ray actors at most once per this window (ms); a chunk that finds the "
        "line idle (the first token) goes at once. 0 = one message per token (slower).",
        HARDWARE,
    )
    serve_stream_batching_max_ms: NonNegativeFloat = setting(
        150.0,
        "The widest that window grows under load (ms): above 8 streams in flight in an engine replica the "
        "window widens with them (the same Ray messages per second), up to this; the first token still goes at "
        "once. Equal to SERVE_STREAM_BATCHING_MS = a fixed window.",
        HARDWARE,
    )

    serve_ready_probe_seconds: PositiveInt = setting(
        30,
        "Seconds /health/ready reuses its last probe (a one-token generation per model) before it probes again. "
        "A dead engine flips readiness at once whatever this says; this bounds how late a hung one is seen. "
        "Each probe keeps vLLM's worker spinning a core for ~1 s after it.",
        HARDWARE,
    )

    # --- edge --------------------------------------------------------------------------------------
    domain: str = setting("", "Public DNS name of this machine; empty = self-signed certificate for 'localhost'.", EDGE)
    tls_mode: TlsMode = setting(
        TlsMode.SELF_SIGNED,
        "Where the certificate comes from: self-signed, acme (Let's Encrypt) or provided (your files).",
        EDGE,
        choices=tuple(m.value for m in TlsMode),
    )
    acme_email: str = setting("", "Contact e-mail for the ACME account (required with TLS_MODE=acme).", EDGE)
    acme_staging: Bool = setting(False, "Use Let's Encrypt's staging environment (untrusted test certs).", EDGE)
    acme_directory_url: str = setting(
        "", "ACME directory URL; empty = Let's Encrypt (production, or staging if ACME_STAGING).", EDGE
    )
    tls_cert_path: str = setting("", "Certificate chain (PEM) for TLS_MODE=provided.", EDGE)
    tls_key_path: str = setting("", "Private key (PEM) for TLS_MODE=provided.", EDGE)
    cert_renew_before_days: PositiveInt = setting(30, "Renew a certificate this many days before it expires.", EDGE)
    bind_address: str = setting("0.0.0.0", "Host address Nginx publishes its ports on.", EDGE)
    http_port: int = setting(80, "Host port for plain HTTP (ACME challenges, redirect to HTTPS).", EDGE)
    https_port: int = setting(443, "Host port for HTTPS (API, dashboards).", EDGE)
    cors_allowed_origins: CsvList = setting(
        [], "Comma-separated origins allowed to call the API from a browser; empty = CORS off.", EDGE
    )

    # --- limits ------------------------------------------------------------------------------------
    nginx_rate_limit_rpm: PositiveInt = setting(
        600, "Requests per minute allowed per client address and per API key on /v1/.", LIMITS
    )
    nginx_rate_limit_burst: PositiveInt = setting(
        50, "Requests allowed above the rate before Nginx answers 429.", LIMITS
    )
    nginx_conn_limit: PositiveInt = setting(64, "Open connections allowed per client address.", LIMITS)
    nginx_login_rate_limit_rpm: PositiveInt = setting(
        10, "Requests per minute per address on dashboard logins.", LIMITS
    )
    # Request parameters the ingress bounds (a model in models.yaml may set its own under request_limits).
    request_max_n: PositiveInt = setting(
        4, "Largest 'n' / 'best_of' (choices generated per request); larger requests get 400.", LIMITS
    )
    request_max_logprobs: NonNegativeInt = setting(
        20, "Largest 'logprobs' (completions) / 'top_logprobs' (chat) a request may ask for.", LIMITS
    )
    request_max_messages: PositiveInt = setting(512, "Most chat messages in one request.", LIMITS)
    request_max_prompts: PositiveInt = setting(32, "Most prompts in one completions request (a prompt list).", LIMITS)
    request_max_tools: PositiveInt = setting(128, "Most tools (function definitions) in one request.", LIMITS)
    request_max_stop: PositiveInt = setting(8, "Most stop sequences (and stop token ids) in one request.", LIMITS)
    request_max_inputs: PositiveInt = setting(
        256, "Most inputs in one embeddings request, and documents in one score / rerank request.", LIMITS
    )
    # At most 64 GiB: the ingress holds a body in memory, and far larger values overflow Nginx's size type.
    max_request_body_mb: Annotated[int, Field(ge=1, le=65536)] = setting(
        10, "Largest request body accepted, in MiB (Nginx and ingress; 1 to 65536).", LIMITS
    )

    # --- security ----------------------------------------------------------------------------------
    auth_enabled: Bool = setting(
        True, "Require an API key on /v1/. Turning it off is allowed but doctor flags it.", SECURITY
    )
    audit_log_file: str = setting(
        "data/logs/audit.log",
        "Audit log file (one JSON line per API request); rotated with LOG_DIR by the supervisor.",
        SECURITY,
    )
    audit_log_prompts: Bool = setting(
        False, "Write prompts into the audit log (only the masked prompt when PII masking is on).", SECURITY
    )

    # --- PII ---------------------------------------------------------------------------------------
    pii_enabled: Bool = setting(False, "Mask personal data before the model and restore it after.", PII)
    pii_entities: CsvList = setting(list(DEFAULT_PII_ENTITIES), "Comma-separated Presidio entity types to mask.", PII)
    pii_score_threshold: UnitInterval = setting(0.5, "Lowest Presidio confidence (0–1) that counts as a match.", PII)
    pii_language: NonEmptyStr = setting("en", "Language of the texts analysed.", PII)
    pii_spacy_model: NonEmptyStr = setting("en_core_web_lg", "spaCy model package the analyzer loads.", PII)
    pii_replicas: PositiveInt = setting(1, "Replicas of the PII service deployment.", PII)
    pii_timeout_seconds: NonNegativeFloat = setting(
        5.0, "Longest wait for the analyzer; past it the request fails with 503.", PII
    )
    pii_fail_open: Bool = setting(
        False, "Forward unmasked text when the analyzer fails (unsafe; doctor flags it).", PII
    )
    pii_cache_entries: NonNegativeInt = setting(
        4096,
        "Texts per PII replica whose analysis is kept (entity offsets under a keyed hash, no text), so a "
        "conversation's earlier turns are not analysed again; 0 turns it off.",
        PII,
    )
    pii_cache_ttl_seconds: NonNegativeFloat = setting(600.0, "How long a text's analysis is kept.", PII)
    pii_embeddings: PiiEmbeddings = setting(
        PiiEmbeddings.MASK,
        "Inputs of /v1/embeddings, /v1/score and /v1/rerank with personal data: mask (the masked "
        "text is what gets embedded, so its vector differs from the original's) or refuse (400).",
        PII,
        choices=tuple(mode.value for mode in PiiEmbeddings),
    )
    pii_deny_list: CsvList = setting(
        [],
        "Comma-separated TYPE=term entries always masked as TYPE (e.g. PROJECT=Blue Falcon); a bare term is "
        "masked as CUSTOM.",
        PII,
    )
    pii_patterns: str = setting(
        "",
        "JSON object of TYPE to a regular expression (or a list) always masked as TYPE, in single quotes, e.g. "
        """'{"EMPLOYEE_ID": "EMP-[0-9]{6}"}'.""",
        PII,
    )
    pii_ner: PiiNer = setting(
        PiiNer.SPACY,
        "What finds names and places: spacy (PII_SPACY_MODEL, measured, the default) or gliner (a GLiNER "
        "PII model, for GPU hosts; its cost and accuracy are not measured yet, see docs/guides/pii.md).",
        PII,
        choices=tuple(ner.value for ner in PiiNer),
    )
    pii_gliner_model: NonEmptyStr = setting(
        "urchade/gliner_multi_pii-v1",
        "With PII_NER=gliner: a Hugging Face repo id, fetched into the serve image at "
        "build and pinned by PII_GLINER_REVISION and PII_GLINER_SHA256, or an absolute directory in the serve "
        "container (e.g. under /appliance/models).",
        PII,
    )
    pii_gliner_revision: str = setting(
        "", "Commit (40 hex digits) of PII_GLINER_MODEL's repo; required when it is a repo id.", PII
    )
    pii_gliner_sha256: str = setting(
        "", "SHA-256 of the GLiNER weights file; required for a repo id, checked at build and at every load.", PII
    )
    pii_gliner_backbone: str = setting(
        "",
        "ORG/NAME@COMMIT of the encoder whose tokenizer and config the GLiNER repo lacks (older GLiNER repos); "
        "fetched at build next to the weights. Empty: the repo carries them.",
        PII,
    )
    pii_gliner_threshold: UnitInterval = setting(
        0.5,
        "Lowest GLiNER score (0–1) that counts as a match (its spans are not cut again by PII_SCORE_THRESHOLD).",
        PII,
    )
    pii_gliner_labels: CsvList = setting(
        [f"{label}={kind}" for label, kind in DEFAULT_GLINER_LABELS],
        "Comma-separated label=TYPE pairs: what "
        "GLiNER is asked to find, and the entity type each is masked as (in place of spaCy's NER for those types).",
        PII,
    )
    pii_gliner_device: PiiDevice = setting(
        PiiDevice.CUDA,
        "Where GLiNER runs: cuda (the GPU serve runs on) or cpu.",
        PII,
        choices=tuple(device.value for device in PiiDevice),
    )

    # --- logs --------------------------------------------------------------------------------------
    log_level: LogLevel = setting(
        LogLevel.INFO, "Lowest level logged.", LOGS, choices=tuple(level.value for level in LogLevel)
    )
    log_format: LogFormat = setting(
        LogFormat.AUTO,
        "json, text, or auto (text on a terminal, json otherwise).",
        LOGS,
        choices=tuple(f.value for f in LogFormat),
    )
    log_retention_days: PositiveInt = setting(14, "Days rotated log files are kept.", LOGS)
    log_max_size_mb: PositiveInt = setting(100, "Size (MiB) at which a log file is rotated.", LOGS)

    # --- observability -----------------------------------------------------------------------------
    dashboards_enabled: Bool = setting(True, "Serve Grafana at /grafana/ (and Prometheus behind auth).", OBSERVE)
    prometheus_retention_days: PositiveInt = setting(15, "Days of metrics Prometheus keeps.", OBSERVE)
    alert_webhook_url: str = setting("", "URL that receives Prometheus alerts; empty = none sent.", OBSERVE)
    ttft_slo_seconds: NonNegativeFloat = setting(2.0, "p95 time to first token above which an alert fires.", OBSERVE)

    # --- Datadog -----------------------------------------------------------------------------------
    datadog_site: str = setting("datadoghq.com", "Datadog site the agent ships to (e.g. datadoghq.eu).", DATADOG)
    datadog_env: str = setting("production", "Value of the 'env' tag on everything sent.", DATADOG)
    datadog_tags: CsvList = setting([], "Extra comma-separated key:value tags.", DATADOG)

    # --- stack -------------------------------------------------------------------------------------
    compose_project_name: NonEmptyStr = setting("appliance", "Docker Compose project name (container prefix).", STACK)

    # --- model registry and integrity ---------------------------------------------------------------
    registry_url: UrlWithoutPassword = setting(
        DEFAULT_REGISTRY_URL,
        "Where the model registry lives: sqlite:///FILE (relative to the project; four "
        "slashes for an absolute path) or postgresql://USER@HOST:PORT/DB (password in ~/.pgpass, never here; "
        "needs the registry-postgres extra).",
        REGISTRY,
    )
    registry_manifest_dir: NonEmptyStr = setting(
        "data/registry/manifests",
        "Directory of the model manifests (SHA-256 of every weight, config and tokenizer "
        "file, written the first time a local model is loaded and compared before every load).",
        REGISTRY,
    )

    # --- supervisor (watchdog, schedules, its metrics) ---------------------------------------------
    supervisor_metrics_port: int = setting(9464, "Port of the supervisor's own Prometheus /metrics.", SUPERVISOR)
    supervisor_state_file: str = setting(
        "data/supervisor/watchdog.json", "Where the watchdog remembers restarts across its own restarts.", SUPERVISOR
    )
    watchdog_restart_budget: PositiveInt = setting(
        5, "Restarts of one service (decayed, see the half-life) before the watchdog gives up and alerts.", SUPERVISOR
    )
    watchdog_budget_half_life_seconds: PositiveInt = setting(
        600, "Seconds after which a past restart counts half against the budget.", SUPERVISOR
    )
    watchdog_backoff_base_seconds: NonNegativeFloat = setting(
        1.0, "Wait before a repeated restart; doubles with each recent restart.", SUPERVISOR
    )
    watchdog_backoff_max_seconds: NonNegativeFloat = setting(60.0, "Longest wait before a restart.", SUPERVISOR)
    watchdog_settle_seconds: NonNegativeFloat = setting(
        0.5,
        "Wait after a crash (a die Docker sent no stop signal for) before restarting; a die after a stop "
        "signal waits up to 10 s for Docker's 'stop' event.",
        SUPERVISOR,
    )
    watchdog_reconcile_seconds: PositiveInt = setting(
        30, "Interval of the safety-net pass that catches events missed by the watchdog.", SUPERVISOR
    )
    cert_check_interval_hours: PositiveInt = setting(
        12, "Hours between certificate renewal checks (with up to 10% jitter).", SUPERVISOR
    )
    log_dir: str = setting(
        "data/logs", "Directory of the appliance's and nginx's log files that are rotated.", SUPERVISOR
    )
    log_rotate_keep: PositiveInt = setting(10, "Rotated (gzipped) files kept per log.", SUPERVISOR)
    log_rotate_interval_seconds: PositiveInt = setting(300, "Seconds between log rotation passes.", SUPERVISOR)
    supervisor_doctor_interval_seconds: PositiveInt = setting(
        300, "Seconds between the supervisor's doctor runs (results in appliance_supervisor_check_ok).", SUPERVISOR
    )

    # --- backups (python -m appliance backup; nightly by the supervisor) ---------------------------------
    backup_enabled: Bool = setting(True, "Whether the supervisor writes a backup archive every night.", BACKUP)
    backup_dir: NonEmptyStr = setting(
        "data/backups", "Directory of the backup archives (mode 0600; copy them off this machine).", BACKUP
    )
    backup_keep: PositiveInt = setting(
        7, "How many of the newest archives the nightly backup keeps in BACKUP_DIR.", BACKUP
    )
    backup_hour_utc: NonNegativeInt = setting(3, "Hour of the day (UTC, 0-23) of the nightly backup.", BACKUP)

    # --- Batch API (/v1/files, /v1/batches; run by the ingress replicas) ---------------------------
    batch_data_dir: NonEmptyStr = setting(
        "data/batch",
        "Directory of uploaded batch files and batch results (relative to the project; their "
        "records are in the registry database, REGISTRY_URL). The compose stack mounts data/batch for serve: "
        "change it only for a serve run outside the stack.",
        BATCH,
    )
    batch_file_max_mb: Annotated[int, Field(ge=1, le=2048)] = setting(
        100, "Largest file accepted by POST /v1/files, in MiB (1 to 2048; Nginx and ingress).", BATCH
    )
    batch_max_requests: Annotated[int, Field(ge=1, le=1_000_000)] = setting(
        50000, "Most requests (lines) in one batch's input file.", BATCH
    )
    batch_concurrency: Annotated[int, Field(ge=1, le=256)] = setting(
        4, "Most lines of a batch in flight at once, per ingress replica (batches run at low priority).", BATCH
    )
    batch_idle_max_live_requests: Annotated[int, Field(ge=0, le=100000)] = setting(
        2,
        "'Idle enough' for batch work: a batch line starts only while the ingress replica has at most this "
        "many live (non-batch) generation or embedding requests in flight; 0 = only when none is.",
        BATCH,
    )

    # --- per-field checks (types and ranges; cross-field rules are elsewhere) ----------------------
    @field_validator("backup_hour_utc")
    @classmethod
    def _hour(cls, value: int) -> int:
        if value > 23:
            raise expected("an hour of the day, 0 to 23")
        return value

    @field_validator("http_port", "https_port", "serve_http_port", "supervisor_metrics_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise expected("a port from 1 to 65535")
        return value

    @field_validator("nginx_conn_limit")
    @classmethod
    def _conn_limit(cls, value: int) -> int:
        if value > 65535:  # nginx refuses limit_conn values of 65536 and more
            raise expected("at most 65535 connections (nginx's limit_conn maximum)")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if value and not HOSTNAME_RE.match(value):
            raise expected("a DNS name such as llm.example.com (no scheme, port or path)")
        return value.lower()

    @field_validator("acme_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if value and not EMAIL_RE.match(value):
            raise expected("an e-mail address")
        return value

    @field_validator("acme_directory_url", "alert_webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise expected("an http:// or https:// URL")
        return value

    @field_validator("registry_url")
    @classmethod
    def _registry_url(cls, value: str) -> str:
        if HIDDEN_PASSWORD in value:
            return value  # reported by the rules, without the password
        try:
            parse_registry_url(value)
        except ValueError as err:
            raise expected(str(err)) from None
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                continue
            scheme, sep, rest = origin.partition("://")
            if not sep or scheme not in {"http", "https"} or not rest or "/" in rest.rstrip("/"):
                raise expected(f"origins like https://app.example.com or '*' (not {origin!r})")
        return [o.rstrip("/") for o in value]

    @field_validator("pii_entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in PII_ENTITY_NAMES:
                guess = did_you_mean(name, PII_ENTITY_NAMES)
                tip = f"did you mean {guess}?" if guess else "see docs/guides/pii.md for the list"
                raise expected(f"Presidio entity types; {name!r} is not one ({tip})")
        if not value:
            raise expected("at least one entity type")
        return value

    @field_validator("pii_deny_list")
    @classmethod
    def _deny_list(cls, value: list[str]) -> list[str]:
        from appliance.serve.pii.custom import parse_deny_list

        try:
            parse_deny_list(value)
        except ValueError as err:
            raise expected(str(err)) from None
        return value

    @field_validator("pii_patterns")
    @classmethod
    def _patterns(cls, value: str) -> str:
        from appliance.serve.pii.custom import parse_patterns

        try:
            parse_patterns(value)
        except ValueError as err:
            raise expected(str(err)) from None
        return value

    @field_validator("pii_gliner_labels")
    @classmethod
    def _gliner_labels(cls, value: list[str]) -> list[str]:
        from appliance.serve.pii.gliner import parse_labels

        try:
            parse_labels(value)
        except ValueError as err:
            raise expected(str(err)) from None
        return value

    @field_validator("pii_gliner_revision")
    @classmethod
    def _gliner_revision(cls, value: str) -> str:
        if value and not COMMIT_RE.match(value):
            raise expected("a commit hash of 40 lower-case hex digits (a branch or tag can move), or nothing")
        return value

    @field_validator("pii_gliner_sha256")
    @classmethod
    def _gliner_sha256(cls, value: str) -> str:
        if value and not SHA256_RE.match(value.lower()):
            raise expected("a SHA-256 of 64 hex digits, or nothing")
        return value.lower()

    @field_validator("pii_gliner_backbone")
    @classmethod
    def _gliner_backbone(cls, value: str) -> str:
        repo, _, commit = value.partition("@")
        if value and not (REPO_RE.match(repo) and COMMIT_RE.match(commit)):
            raise expected("ORG/NAME@<40-hex commit>, or nothing")
        return value

    @field_validator("pii_gliner_model")
    @classmethod
    def _gliner_model(cls, value: str) -> str:
        if not value.startswith("/") and not REPO_RE.match(value):
            raise expected("a Hugging Face repo id (ORG/NAME) or an absolute directory")
        return value

    @field_validator("datadog_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if ":" not in tag or tag.startswith(":"):
                raise expected(f"key:value tags (not {tag!r})")
        return value


def setting_names() -> list[str]:
    """Every ``.env`` key, in declaration order."""
    return [name.upper() for name in Settings.model_fields]

"""``python -m appliance up|down|logs``: the Docker Compose stack (``make up``, ``make down``, ``make logs``).

``up``: a first admin API key when there is none (printed once), the validated config, pre-flight doctor,
a bootstrap certificate, ``data/run/`` rendered (with what the non-root serve container may read), ``docker
compose build``, the model cache handed to serve's user, then ``docker compose up -d`` with the GPU or CPU
files, progress while the models load (``/health/startup`` through nginx), and the URLs with snippets to
paste. Run again after editing models.yaml or .env: only services whose configuration changed restart.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.certs.store import served_certificate
from appliance.commands.common import add_config_options, config_files, load
from appliance.config import ApplianceConfig
from appliance.config.keys import create_key
from appliance.config.secrets import Role
from appliance.errors import ApplianceError
from appliance.output import say
from appliance.stack.plan import (
    DATADOG_PROFILE,
    StackPlan,
    api_urls,
    local_health_url,
    plan_stack,
    socket_path,
    without_cluster,
)

if TYPE_CHECKING:
    from appliance.docker.compose import ComposeCli

FIRST_KEY_NAME = "admin"


def show(message: str, *, style: str = "") -> None:
    """What the user came for (the key, URLs, snippets) goes to stdout; progress goes to stderr (say)."""
    from rich.text import Text

    from appliance.output import out_console

    out_console().print(Text(message, style=style), markup=False)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up", help="build and start the stack; wait until the models are ready", description=__doc__.split("\n\n")[1]
    )
    add_stack_options(up)
    up.add_argument(
        "--local",
        action="store_true",
        help="build every image from a local base without any registry or index (compose/local.yml; "
        "needs --base-image and scripts/docker/wheelhouse.sh)",
    )
    up.add_argument("--base-image", default="debian:bookworm-slim", help="base image of every built image")
    up.add_argument("--no-build", action="store_true", help="use the images built before")
    up.add_argument("--no-wait", action="store_true", help="return once the containers are started")
    up.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the models (default 3600)")
    up.add_argument("--skip-preflight", action="store_true", help="do not run the pre-flight doctor first")
    up.set_defaults(handler=run_up)

    down = sub.add_parser(
        "down",
        help="stop and remove the stack's containers and network (data is kept)",
        description="docker compose down. Named volumes (model cache, metrics) and data/ stay; "
        "--volumes removes the volumes too.",
    )
    add_stack_options(down)
    down.add_argument("--volumes", action="store_true", help="also remove the named volumes (model cache, metrics)")
    down.set_defaults(handler=run_down)

    logs = sub.add_parser("logs", help="follow the stack's logs", description="docker compose logs --follow.")
    add_stack_options(logs)
    logs.add_argument("services", nargs="*", help="only these services (default: all)")
    logs.add_argument("--tail", default="100", help="lines of history per service (default 100)")
    logs.add_argument("--no-follow", action="store_true", help="print and return")
    logs.set_defaults(handler=run_logs)


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--root", type=Path, default=Path("."), help="the appliance's directory (default: .)")
    parser.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )


def stack_compose(
    args: argparse.Namespace, config: ApplianceConfig, plan: StackPlan, profiles: tuple[str, ...] | None = None
) -> ComposeCli:
    from appliance.docker.compose import ComposeCli

    root = args.root.resolve()
    return ComposeCli(
        config.settings.compose_project_name,
        [root / f for f in plan.files],
        project_dir=root,
        docker_host=args.docker_host,
        env=dict(plan.env),
        profiles=plan.profiles if profiles is None else profiles,
    )


def ensure_first_key(config: ApplianceConfig) -> str | None:
    """Create the admin key when auth is on and .secrets has no key yet; returns it (to print once)."""
    if not config.settings.auth_enabled or config.secrets.api_keys:
        return None
    key, _ = create_key(
        config.files.secrets, FIRST_KEY_NAME, Role.ADMIN, (), existing=(), served=[m.id for m in config.models]
    )
    return key


def _preflight(args: argparse.Namespace, config: ApplianceConfig) -> None:
    from appliance.doctor.checks import all_checks
    from appliance.doctor.context import DoctorContext
    from appliance.doctor.finding import Level
    from appliance.doctor.report import print_table
    from appliance.doctor.runner import exit_code, run_checks
    from appliance.output import out_console

    ctx = DoctorContext(files=config_files(args), config=config, preflight=True, docker_host=args.docker_host)
    results = asyncio.run(run_checks(all_checks(), ctx))
    levels = {f.level for r in results for f in r.findings}
    if exit_code(results) != 0:
        print_table(results, out_console(), 0.0)
    if Level.ERROR in levels:
        raise ApplianceError(
            "pre-flight checks failed: fix the errors doctor shows above, then run make up again "
            "(or pass --skip-preflight)"
        )
    if Level.WARNING in levels:
        say("pre-flight: warnings above (the stack starts anyway)", style="yellow")
        return
    say("pre-flight checks passed")


def run_up(args: argparse.Namespace) -> int:
    from appliance.certs.renewal import ensure_bootstrap
    from appliance.certs.store import DEFAULT_CERTS_ROOT, CertPaths
    from appliance.stack.render import render_run_dir

    config = load(args)
    key = ensure_first_key(config)
    if key:  # shown now, before anything below can fail: the next run will not make (or show) another
        show(
            f"\nYour admin API key (shown once, stored only as a hash in {config.files.secrets}):\n\n  {key}\n",
            style="bold",
        )
        config = load(args)
    if not args.skip_preflight:
        _preflight(args, config)
    cert = ensure_bootstrap(config, CertPaths(DEFAULT_CERTS_ROOT))
    self_signed = cert.issuer == cert.subject
    if self_signed:
        say(
            "TLS: a self-signed certificate is in use (no DOMAIN / TLS_MODE=acme): clients must trust "
            f"{served_certificate(config.settings)} or skip verification",
            style="yellow",
        )
    rendered = render_run_dir(config, version=__version__, local=args.local)
    plan = plan_stack(
        config,
        rendered=rendered,
        local=args.local,
        base_image=args.base_image,
        docker_socket=socket_path(args.docker_host),
    )
    compose = stack_compose(args, config, plan)
    mode = config.accelerator.value.upper()
    say(f"starting the stack in {mode} mode ({', '.join(plan.files)}); the first build takes a while")
    if not args.no_build:
        compose.run("build", timeout=7200, stream=True)
    check_pii_model(config, local=args.local, docker_host=args.docker_host)
    # the one-off chown container must not take serve's fixed address on the cluster network (serve may hold it)
    own_model_cache(stack_compose(args, config, without_cluster(plan)), plan)
    compose_up(compose)
    if not args.no_wait:
        wait_ready(config, args.timeout)
    _print_ready(config, key, self_signed, local=args.local)
    return 0


COMPOSE_UP_TRIES = 2
COMPOSE_UP_PAUSE_S = 10.0


def compose_up(compose: ComposeCli, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """``docker compose up -d``, tried once more after a pause when it fails. Docker 20.10 gives up on a container
    that needs more than 2 s to exit after its SIGKILL ("tried to kill container, but did not receive an exit
    event": seen in CI here when ``up`` recreated serve while two test lanes loaded the machine) and compose stops
    there; the second try finds that container gone. Any other failure fails again and is reported as it is."""
    from appliance.docker.errors import ComposeError

    for attempt in range(1, COMPOSE_UP_TRIES + 1):
        try:
            compose.run("up", "-d", "--remove-orphans", timeout=7200, stream=True)
            return
        except ComposeError:
            if attempt == COMPOSE_UP_TRIES:
                raise
            say(
                f"docker compose up failed (its output is above); trying once more in {COMPOSE_UP_PAUSE_S:.0f} s "
                "(a container slow to exit after Docker killed it makes Docker 20.10 give up on it)",
                style="yellow",
            )
            sleep(COMPOSE_UP_PAUSE_S)


def check_pii_model(config: ApplianceConfig, *, local: bool, docker_host: str | None) -> None:
    """With PII on, the built serve image must carry the spaCy model (and with PII_NER=gliner the GLiNER model)
    serve will load: refuse to start otherwise (the PII service would never come up and every request would get
    503 pii_unavailable)."""
    if not config.settings.pii_enabled:
        return
    from appliance.docker.engine import DockerEngine
    from appliance.docker.images import image_labels
    from appliance.stack.pii_model import gliner_model_problem, serve_image, serve_spacy_model, spacy_model_problem

    image = serve_image(config.settings.compose_project_name)
    with DockerEngine(docker_host) as engine:
        labels = image_labels(engine, image)
    problem = spacy_model_problem(serve_spacy_model(config.settings.pii_spacy_model, local=local), image, labels)
    problem = problem or gliner_model_problem(config.settings, image, labels)
    if problem is not None:
        raise ApplianceError(f"PII masking cannot start: {problem}; nothing was started")


MODEL_CACHE = "/var/cache/huggingface"


def own_model_cache(compose: ComposeCli, plan: StackPlan) -> None:
    """The model-cache volume belongs to the serve container's user (it runs as that user, never root). A new
    volume takes that from the image; one written by an older, root-run serve is handed over here, once per
    ``up`` (a one-off container as root that only chowns; the watchdog ignores one-offs)."""
    compose.run(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "--user",
        "0",
        "--entrypoint",
        "chown",
        "serve",
        "-R",
        plan.env["APPLIANCE_SERVE_USER"],
        MODEL_CACHE,
        timeout=1800,
    )


def _probe(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """GET a health URL through the local nginx; its JSON (200 or 503) or None when nothing answers."""
    from appliance.doctor.probes import http_get_json

    context = ssl.create_default_context()
    context.check_hostname = False  # our own nginx on loopback; the certificate may be self-signed
    context.verify_mode = ssl.CERT_NONE
    try:
        body = http_get_json(url, timeout, context)[1]
    except OSError:
        return None
    return body if isinstance(body, dict) else None


def _describe(body: dict[str, Any] | None) -> str:
    if body is None:
        return "waiting for nginx"
    ready, total = body.get("models_ready"), body.get("models_total")
    if not isinstance(ready, int) or not isinstance(total, int) or not total:  # the public body has no model ids
        return "waiting for the serve container (Ray, then the engines)"
    pii = f", PII service {body['pii']}" if isinstance(body.get("pii"), str) else ""  # present when masking is on
    return f"{ready} of {total} model(s) ready{pii} ({body.get('status', '?')})"


def wait_ready(config: ApplianceConfig, timeout: float, interval: float = 3.0) -> None:
    url = local_health_url(config)
    started = time.monotonic()
    last = ""
    while True:
        body = _probe(url)
        if body is not None and body.get("status") == "ready":
            say(f"every model is ready ({time.monotonic() - started:.0f} s)", style="green")
            return
        text = _describe(body)
        if body is not None and body.get("status") == "failed":
            what = "the PII service failed to start" if body.get("pii") == "failed" else "a model failed to load"
            raise ApplianceError(f"{what} ({text}); see: python -m appliance logs serve")
        if text != last:
            say(f"[{time.monotonic() - started:5.0f} s] {text}")
            last = text
        if time.monotonic() - started > timeout:
            raise ApplianceError(
                f"the models were not ready after {timeout:.0f} s ({text}); the stack keeps "
                "starting: watch make status / make logs"
            )
        time.sleep(interval)


def dashboard_lines(config: ApplianceConfig, *, local: bool) -> str:
    """The Grafana and Prometheus lines of ``up``'s output: their URLs, or why they are off."""
    urls = api_urls(config)
    if not config.settings.dashboards_enabled:
        off = "off (DASHBOARDS_ENABLED=false)"
        return f"Grafana:    {off}\nPrometheus: {off}\n"
    grafana = (
        "off (--local: its image comes only from a registry; compose/local.yml)"
        if local
        else f"{urls['grafana']}   (user admin, GRAFANA_ADMIN_PASSWORD in {config.files.secrets})"
    )
    return f"Grafana:    {grafana}\nPrometheus: {urls['prometheus']}\n"


def _print_ready(config: ApplianceConfig, key: str | None, self_signed: bool, *, local: bool = False) -> None:
    urls = api_urls(config)
    model = next((m.id for m in config.models if m.task == "generate"), "MODEL")  # the snippet is a chat call
    shown_key = key or "$APPLIANCE_API_KEY"
    cafile = served_certificate(config.settings) if self_signed else None
    show(f"API:        {urls['api']}\n{dashboard_lines(config, local=local)}Health:     {urls['health']}\n")
    cacert = f" --cacert {cafile}" if cafile else ""
    show(
        "curl:\n"
        f"  curl{cacert} {urls['api']}/chat/completions -H 'Authorization: Bearer {shown_key}' \\\n"
        f"    -H 'Content-Type: application/json' \\\n"
        f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}\'\n'
    )
    client = f'OpenAI(base_url="{urls["api"]}", api_key="{shown_key}"' + (
        f',\n                http_client=httpx.Client(verify=ssl.create_default_context(cafile="{cafile}")))'
        if cafile
        else ")"
    )
    imports = "import ssl, httpx\n  " if cafile else ""
    show(
        "OpenAI Python:\n"
        f"  {imports}from openai import OpenAI\n"
        f"  client = {client}\n"
        f'  reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello!"}}])\n'
        "  print(reply.choices[0].message.content)\n"
    )


def run_down(args: argparse.Namespace) -> int:
    config = load(args)
    plan = plan_stack(config, rendered={}, docker_socket=socket_path(args.docker_host))
    # with the datadog profile always: an agent started while a key was set goes too
    compose = stack_compose(args, config, plan, profiles=(DATADOG_PROFILE,))
    compose.run(
        "down", "--remove-orphans", "-t", "30", *(["--volumes"] if args.volumes else []), timeout=600, stream=True
    )
    say("the stack is down" + (" and its volumes removed" if args.volumes else "; data/ and the volumes are kept"))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    config = load(args)
    plan = plan_stack(config, rendered={}, docker_socket=socket_path(args.docker_host))
    compose = stack_compose(args, config, plan)
    follow = [] if args.no_follow else ["--follow"]
    try:
        compose.run("logs", *follow, "--tail", args.tail, *args.services, timeout=10**9, stream=True)
    except KeyboardInterrupt:
        pass
    return 0

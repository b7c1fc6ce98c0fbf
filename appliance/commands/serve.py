"""``python -m appliance serve``: deploy the Serve application (engines + ingress) onto a running Ray cluster.

Runs in the ``serve`` container after ``ray start --head``; tests run it against a Ray head they started on
127.0.0.1. It returns once the application is submitted (models keep loading: watch ``/health/startup``),
or, with ``--wait``, once every model is up.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path
from typing import Any

from appliance.commands.common import add_config_options, load
from appliance.config import ApplianceConfig, ConfigFiles, load_config
from appliance.errors import ApplianceError, NotAvailableError
from appliance.output import say
from appliance.stack.plan import SERVE_API_KEYS, SERVE_MODELS, SERVE_MOUNT, SERVE_SETTINGS

APP_NAME = "appliance"
_LOGGER = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="deploy the model engines and the API ingress onto Ray Serve",
        description=__doc__.split("\n\n")[0],
    )
    add_config_options(parser)
    parser.add_argument("--ray-address", default="auto", help="Ray cluster to join (default: auto)")
    parser.add_argument(
        "--http-host", default="127.0.0.1", help="address the Serve HTTP proxy binds (the container passes 0.0.0.0)"
    )
    parser.add_argument("--http-port", type=int, default=None, help="HTTP port (default: SERVE_HTTP_PORT)")
    parser.add_argument("--wait", action="store_true", help="return only when every model is running")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds --wait waits (default 1800)")
    parser.add_argument(
        "--head",
        action="store_true",
        help="start a Ray head node here first, deploy onto it and run until it stops (the serve container's command)",
    )
    parser.add_argument(
        "--in-stack",
        action="store_true",
        help=f"read the files make up renders for the serve container ({SERVE_MOUNT}: settings, "
        "models, API key hashes) instead of --env/--secrets/--models (the container's command)",
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help="deploy nothing: apply the model changes queued in the registry (models deploy|promote|"
        "rollback) to the running application until stopped (serve --head does this by itself)",
    )
    parser.set_defaults(handler=run)


def in_stack_files(mount: Path = Path(SERVE_MOUNT)) -> ConfigFiles:
    """The serve container's configuration: a copy of .env, of models.yaml when there is one, and the API key
    lines of .secrets (its only secrets). ``make up`` validated the whole configuration on the host; this is the
    same settings and models, checked again here, with the key file in place of .secrets (its passwords and
    tokens never reach this container)."""
    return ConfigFiles(env=mount / SERVE_SETTINGS, secrets=mount / SERVE_API_KEYS, models=mount / SERVE_MODELS)


def load_serve_config(args: argparse.Namespace) -> ApplianceConfig:
    if not args.in_stack:
        return load(args)
    from appliance.config.gpus import detect_gpu_count

    return load_config(in_stack_files(), gpu_count=detect_gpu_count())


def run(args: argparse.Namespace) -> int:
    config = load_serve_config(args)
    try:
        import ray
        from ray import serve
    except ImportError as err:
        raise NotAvailableError(
            f"the serve extra is not installed ({err.name} is missing): pip install '.[serve,cpu]' or use the "
            "serve image"
        ) from None
    if args.head:
        from appliance.serve.head import gcs_address, proxy_port, run_head

        args.ray_address = gcs_address(config.settings)
        args.http_port = args.http_port or proxy_port(config.settings)
        return run_head(config.settings, lambda: _deploy(args, config, ray, serve))
    if args.attach:
        return _attach(args, config, ray, serve)
    _deploy(args, config, ray, serve)
    return 0


def _application(args: argparse.Namespace, config: ApplianceConfig, serve: Any) -> Any:
    """``run(generations)``: build the application with these model generations and (re)deploy it."""
    from appliance.serve.builder import build_app

    audit = Path(config.settings.audit_log_file).resolve()

    def run_app(generations: Any) -> None:
        # relative paths of the settings are the project's: the working directory, as for the audit log and the
        # change applier (in the stack, /appliance, where data/registry and data/batch are mounted)
        app = build_app(
            config,
            audit_path=str(audit),
            secrets_path=str(config.files.secrets.resolve()),
            generations=generations,
            root=Path.cwd(),
        )
        serve.run_many(
            [serve.RunTarget(target=app, name=APP_NAME, route_prefix="/")], wait_for_applications_running=False
        )

    return run_app


def _restored(config: ApplianceConfig) -> tuple[ApplianceConfig, tuple[Path, str]]:
    """The configuration with the models production served when serve last stopped, when the model changes
    since were made under this same configuration (appliance.lifecycle.served); and where the applier records
    what it serves after each change, with the configuration's digest."""
    import dataclasses

    from appliance.lifecycle.served import configured_digest, read_record, record_path, restore

    path = record_path(config.settings)
    base = configured_digest(config.models)
    restored = restore(config.models, read_record(path))
    if restored.used:
        say(f"serving {restored.why} ({path})")
        config = dataclasses.replace(config, models=restored.models)
    elif restored.stale:
        _LOGGER.info("%s removed: %s", path, restored.why)
        path.unlink(missing_ok=True)
    return config, (path, base)


def _start_applier(
    args: argparse.Namespace, config: ApplianceConfig, serve: Any, served: tuple[Path, str] | None = None
) -> threading.Event:
    from appliance.serve.applier import run_applier

    stop = threading.Event()
    threading.Thread(
        target=run_applier,
        args=(config, serve, APP_NAME, _application(args, config, serve), stop),
        kwargs={"events": _lifecycle_events(config), "served": served},
        daemon=True,
        name="model-changes",
    ).start()
    return stop


def _lifecycle_events(config: ApplianceConfig) -> Any:
    from appliance.serve.lifecycle_metrics import RayLifecycleEvents

    try:
        return RayLifecycleEvents({spec.id for spec in config.models})
    except Exception:
        _LOGGER.warning("model lifecycle metrics unavailable", exc_info=True)
        return None


def _attach(args: argparse.Namespace, config: ApplianceConfig, ray: Any, serve: Any) -> int:
    """Apply queued model changes to the application running on --ray-address until SIGTERM/SIGINT."""
    import signal

    ray.init(address=args.ray_address, log_to_driver=False, logging_level="WARNING")
    stop = _start_applier(args, config, serve)
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    say("applying queued model changes (python -m appliance models deploy|promote|rollback); stop with SIGTERM")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        stop.set()
    return 0


def _deploy(args: argparse.Namespace, config: ApplianceConfig, ray: Any, serve: Any) -> None:
    from appliance.lifecycle.start import verify_and_record
    from appliance.serve.builder import engine_kwargs
    from appliance.serve.generations import Generations

    config, served = _restored(config)  # the model changes applied since this configuration, if any
    # every model's files are verified (and the deploy recorded) before Ray is touched: a refusal leaves a
    # running application as it is
    recorder = verify_and_record(config, {spec.id: engine_kwargs(spec) for spec in config.models})
    try:
        ray.init(address=args.ray_address, log_to_driver=False, logging_level="WARNING")
        port = args.http_port or config.settings.serve_http_port
        serve.start(http_options={"host": args.http_host, "port": port})
        # with pinned versions from the start: a later model change rebuilds the application without restarting
        # what it does not change (appliance.serve.generations)
        _application(args, config, serve)(Generations())
    except Exception as err:  # recorded as failed, then raised as it was
        recorder.finish(False, f"deploy failed: {type(err).__name__}")
        raise
    say(
        f"deployed '{APP_NAME}' with {len(config.models)} model(s) on http://{args.http_host}:{port}; "
        f"models load in the background: GET /health/startup"
    )
    if args.wait:
        _wait_and_record(serve, args.timeout, recorder)
    elif args.head:  # the container's process lives on: record ready (or failed), then each health check
        _start_applier(args, config, serve, served)  # and apply the model changes queued in the registry
        _start_metrics_relay(config, ray)  # scale-out: Prometheus's way to the worker nodes' metrics
        threading.Thread(
            target=_wait_and_record,
            args=(serve, args.timeout, recorder, False, HEALTH_RECORD_S),
            daemon=True,
            name="registry-deploy-recorder",
        ).start()


def _start_metrics_relay(config: ApplianceConfig, ray: Any) -> None:
    from appliance.cluster.metrics_relay import RELAY_PORT, start_relay
    from appliance.cluster.network import cluster_network

    if cluster_network(config.settings) is None:
        return
    try:
        start_relay(ray.nodes, ray.get_runtime_context().get_node_id())
    except OSError as err:  # the port taken: the workers' metrics are not scraped, serving goes on
        _LOGGER.warning("worker nodes' metrics not relayed to Prometheus (port %d): %s", RELAY_PORT, err)


HEALTH_RECORD_S = 30.0  # how often the container's process writes the models' last health check


def _wait_and_record(
    serve: Any, timeout: float, recorder: Any, reraise: bool = True, heartbeat_s: float | None = None
) -> None:
    try:
        _wait_running(serve, timeout)
    except ApplianceError as err:
        recorder.finish(False, str(err))
        if reraise:
            raise
        return
    recorder.finish(True, "the application is running")
    while heartbeat_s:
        time.sleep(heartbeat_s)
        try:
            status = serve.status().applications.get(APP_NAME)
        except Exception:  # the loop's boundary: Ray going away ends the container anyway
            _LOGGER.warning("serve status unavailable; the registry's health checks stop", exc_info=True)
            return
        if status is not None and getattr(status.status, "value", status.status) == "RUNNING":
            recorder.health_checked()


def _wait_running(serve: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = serve.status().applications.get(APP_NAME)  # type: ignore[attr-defined]
        value = getattr(status.status, "value", status.status) if status else "MISSING"
        if value == "RUNNING":
            say("every model is running")
            return
        if value in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise ApplianceError(f"the application failed to deploy: {status.message if status else ''}")
        time.sleep(2)
    raise ApplianceError(f"models were not running after {timeout:.0f}s; see /health/startup")

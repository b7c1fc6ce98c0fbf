"""``python -m appliance doctor [--preflight] [--json]``: what is wrong and how to fix it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from appliance.commands.common import add_config_options, load
from appliance.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="run pre-flight and running-stack checks",
        description="Check the host, the configuration and (unless --preflight) the running "
        "stack. Every problem says what was expected, what was found, and the fix. "
        "Exit 0: all good; 1: problems found.",
    )
    add_config_options(parser)
    parser.add_argument("--preflight", action="store_true", help="only the checks that need no running stack")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )
    parser.add_argument(
        "--health-url",
        default=None,
        help="the serving path's readiness URL (default: /health/ready through nginx's HTTPS port)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=None,
        help="Prometheus base URL (default: /prometheus through nginx, with the dashboard login)",
    )
    parser.add_argument(
        "--model-cache", type=Path, default=None, help="Hugging Face hub cache (default: HF_HUB_CACHE/HF_HOME)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from appliance.commands.common import config_files
    from appliance.doctor.checks import all_checks
    from appliance.doctor.context import DoctorContext
    from appliance.doctor.report import as_json, print_table
    from appliance.doctor.runner import exit_code, run_checks
    from appliance.output import err_console, out_console, print_json

    started = time.perf_counter()
    try:
        config, issues = load(args), []
    except ConfigError as err:
        config, issues = None, err.issues
    ctx = DoctorContext(
        files=config_files(args),
        config=config,
        config_issues=list(issues),
        preflight=args.preflight,
        docker_host=args.docker_host,
        health_url=args.health_url,
        prometheus_url=args.prometheus_url,
        model_cache=args.model_cache,
    )
    results = asyncio.run(run_checks(all_checks(), ctx))
    code = exit_code(results)
    seconds = time.perf_counter() - started
    if args.json:
        print_json(as_json(results, code, seconds))
    else:
        print_table(results, out_console(), seconds)
        if config is None:
            err_console().print("the configuration is invalid: only the checks that need no config ran", markup=False)
    return code

"""``python -m appliance supervise``: run the supervisor daemon in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from appliance.commands.common import add_config_options, load
from appliance.logs.setup import setup_logging

_LOGGER = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "supervise",
        help="run the supervisor daemon (watchdog, renewals, log rotation)",
        description="Watch the compose project's containers through Docker events, restart "
        "the ones that die or turn unhealthy (with backoff and a budget), check the "
        "certificate twice a day and rotate logs. Stops cleanly on SIGTERM.",
    )
    add_config_options(parser)
    parser.add_argument(
        "--docker-host", default=None, help="Docker Engine URL (default: DOCKER_HOST or the local socket)"
    )
    parser.add_argument("--metrics-addr", default="0.0.0.0", help="address of the /metrics listener (default 0.0.0.0)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from appliance.supervisor.daemon import supervise

    config = load(args)
    if args.log_level is None and "LOG_LEVEL" not in os.environ:  # the daemon's log is its record: .env's level
        s = config.settings
        setup_logging(s.log_level.value, s.log_format.value, component="supervisor")
    asyncio.run(supervise(config, docker_host=args.docker_host, metrics_addr=args.metrics_addr))
    return 0

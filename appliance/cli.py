"""``python -m appliance``: parse, dispatch, and map exceptions to exit codes.

Exit codes: 0 ok · 1 findings or failures · 2 usage or configuration error · 130 interrupted.
User mistakes never show a traceback; an unexpected exception is a bug and is reported as one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.commands import (
    backup,
    certs,
    cluster,
    config_docs,
    doctor,
    init,
    keys,
    models,
    serve,
    status,
    supervise,
    up,
    validate,
)
from appliance.errors import ApplianceError, ConfigError
from appliance.logs.setup import setup_logging
from appliance.output import print_issues, say

_LOGGER = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance",
        description="The LLM appliance: configure, check and run vLLM engines behind Ray Serve and Nginx.",
        epilog="Exit codes: 0 ok, 1 findings or failures, 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: the LOG_LEVEL environment variable, else WARNING; the supervisor: LOG_LEVEL of .env)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    validate.register(sub)
    init.register(sub)
    keys.register(sub)
    config_docs.register(sub)
    serve.register(sub)
    certs.register(sub)
    supervise.register(sub)
    doctor.register(sub)
    status.register(sub)
    up.register(sub)
    models.register(sub)
    backup.register(sub)
    cluster.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or os.environ.get("LOG_LEVEL", "WARNING"), "auto", component="cli")
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print_issues(err.issues)
        say(f"✗ {err}: nothing was changed; fix them and run again (python -m appliance validate)", style="bold red")
        return err.exit_code
    except ApplianceError as err:
        say(f"✗ {err}", style="bold red")
        return err.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BrokenPipeError:
        return 1


def run() -> None:
    sys.exit(main())

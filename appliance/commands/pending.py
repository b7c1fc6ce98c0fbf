"""Subcommands whose behaviour arrives with later issues. Each says so and exits non-zero; none pretends."""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_options
from appliance.errors import NotAvailableError

PENDING = {
    "up": ("validate, then build and start the Docker Compose stack", "the compose-stack issue (#8)"),
    "down": ("stop the Docker Compose stack", "the compose-stack issue (#8)"),
    "logs": ("follow the logs of the running stack", "the compose-stack issue (#8)"),
}


def register(sub: argparse._SubParsersAction) -> None:
    for name, (purpose, arrives_with) in PENDING.items():
        parser = sub.add_parser(name, help=f"{purpose} (not available yet)",
                                description=f"{purpose.capitalize()}. Not available yet: arrives with "
                                f"{arrives_with}.")  # fmt: skip
        add_config_options(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(handler=_not_available, command_name=name, arrives_with=arrives_with)


def _not_available(args: argparse.Namespace) -> int:
    raise NotAvailableError(
        f"'{args.command_name}' is not available yet: it arrives with {args.arrives_with}. Nothing was changed."
    )

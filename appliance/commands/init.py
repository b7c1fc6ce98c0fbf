"""``python -m appliance init``: create .env and .secrets from the examples, generate passwords."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.commands.common import add_config_options
from appliance.config.bootstrap import ensure_config_files
from appliance.errors import UsageError
from appliance.output import say


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "init",
        help="create .env and .secrets from the examples when missing (idempotent)",
        description="Copy .env.example → .env and .secrets.example → .secrets (mode 0600) only when missing, "
        "and fill empty generated passwords. Existing values are never changed.",
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="where the *.example files are")
    add_config_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        done = ensure_config_files(args.root, args.env, args.secrets)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    for line in done:
        say(line)
    if not done:
        say(f"{args.env} and {args.secrets} are in place; nothing to do")
    return 0

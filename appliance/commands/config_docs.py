"""``python -m appliance config``: print or write the examples and the settings reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.atomic import write_atomic
from appliance.config.reference import (
    render_env_example,
    render_reference,
    render_secrets_example,
    splice_reference,
)
from appliance.output import say

GUIDE = Path("docs/guides/configurator.md")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "config",
        help="print or regenerate .env.example, .secrets.example, the reference",
        description="The examples and the reference are generated from the typed settings.",
    )
    parser.add_argument(
        "what", choices=["env-example", "secrets-example", "reference"], nargs="?", help="what to print on stdout"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="rewrite .env.example, .secrets.example and the table in docs/guides/configurator.md",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.write:
        write_atomic(Path(".env.example"), render_env_example(), mode=0o644)
        write_atomic(Path(".secrets.example"), render_secrets_example(), mode=0o644)
        write_atomic(GUIDE, splice_reference(GUIDE.read_text(encoding="utf-8")), mode=0o644)
        say(f"wrote .env.example, .secrets.example and the reference in {GUIDE}")
        return 0
    render = {
        "env-example": render_env_example,
        "secrets-example": render_secrets_example,
        "reference": render_reference,
    }
    print(render[args.what or "env-example"](), end="")
    return 0

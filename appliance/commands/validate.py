"""``python -m appliance validate``: check .env, .secrets and models.yaml; report every issue."""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_options, config_files, load
from appliance.errors import ConfigError
from appliance.output import print_issues, print_json, say


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "validate",
        help="check the configuration files and report every problem",
        description="Check .env, .secrets and models.yaml. Exit 0 when valid (warnings allowed), 2 on errors.",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    files = config_files(args)
    try:
        config = load(args)
    except ConfigError as err:
        errors = [i for i in err.issues if i.is_error]
        if args.json:
            print_json(
                {
                    "ok": False,
                    "errors": len(errors),
                    "warnings": len(err.issues) - len(errors),
                    "issues": [i.to_dict() for i in err.issues],
                }
            )
        else:
            print_issues(err.issues)
            say(
                f"✗ configuration invalid: {len(errors)} error(s), {len(err.issues) - len(errors)} warning(s)",
                style="bold red",
            )
        return 2
    warnings = list(config.warnings)
    models_from = str(files.models) if config.models_from_yaml else f"{files.env} (MODEL_*)"
    if args.json:
        print_json(
            {
                "ok": True,
                "errors": 0,
                "warnings": len(warnings),
                "issues": [i.to_dict() for i in warnings],
                "models": [m.id for m in config.models],
                "models_from": models_from,
                "accelerator": config.accelerator.value,
                "gpu_count": config.gpu_count,
            }
        )
        return 0
    print_issues(warnings)
    gpus = "unknown" if config.gpu_count is None else str(config.gpu_count)
    say(
        f"✓ configuration valid: {len(config.models)} model(s) from {models_from}: "
        f"{', '.join(m.id for m in config.models)}; accelerator {config.accelerator.value} ({gpus} GPU(s)); "
        f"{len(config.secrets.api_keys)} API key(s); "
        f"{len(warnings)} warning(s)",
        style="green",
    )
    return 0

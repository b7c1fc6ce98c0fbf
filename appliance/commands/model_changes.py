"""``python -m appliance models deploy|promote|rollback``: ask for a model change and wait for its outcome.

The change is validated here (models.yaml, with every error), queued in the registry, and applied by the serve
container's head process, the one process that talks to Ray Serve: integrity check, the new generation beside
the old one (or replacing it, said up front), ready, smoke test, switch, drain; any failure rolls back to the
last good generation and is recorded with why. ``--no-wait`` returns once it is queued (its id); ``--json`` on each.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from appliance.commands.common import add_config_options, load
from appliance.errors import UsageError

WAIT_POLL_S = 1.0


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, helptext in (
        ("deploy", "apply models.yaml: change only the models whose revision, weights or engine arguments differ"),
        ("promote", "start the ready staging revision of a model in production (same weights, same engine args)"),
        ("rollback", "serve an earlier revision of a model again (default: the newest earlier one that was ready)"),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        add_config_options(action)
        if name == "deploy":
            # --environment, as enable/disable say it: --env names the settings file on every command
            action.add_argument(
                "--environment",
                choices=["production", "staging"],
                default="production",
                help="where: staging loads and smoke-tests the new revisions, then stops them until "
                "promoted (default production)",
            )
        else:
            action.add_argument("model_id", metavar="ID", help="the model")
        if name == "rollback":
            action.add_argument(
                "--to",
                type=int,
                default=None,
                metavar="REVISION",
                help="the registry entry to go back to (see models list --model ID)",
            )
            action.add_argument(
                "--environment",
                choices=["production", "staging"],
                default="production",
                help="which environment's model (default production)",
            )
        action.add_argument("--no-wait", action="store_true", help="return once the change is queued")
        action.add_argument(
            "--timeout", type=float, default=1800.0, metavar="S", help="seconds to wait for the outcome (default 1800)"
        )
        action.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        action.set_defaults(handler=_change)


def request_payload(args: argparse.Namespace, config: Any) -> tuple[str, str, dict[str, Any]]:
    """(environment, model id, payload) of the request ``args`` ask for; UsageError for a model not configured."""
    if args.models_action == "deploy":
        return args.environment, "", {"models_yaml": models_yaml_text(config)}
    configured = [m.id for m in config.models]
    if args.model_id not in configured:
        raise UsageError(f"{args.model_id!r}: expected a configured model, one of {', '.join(configured)}")
    if args.models_action == "promote":
        return "production", args.model_id, {}
    return args.environment, args.model_id, {"to": args.to}


def models_yaml_text(config: Any) -> str:
    """What the serve head validates again: models.yaml as written, or the MODEL_* settings' model as YAML."""
    if config.models_from_yaml:
        return str(config.files.models.read_text())
    import yaml

    return str(yaml.safe_dump({"models": [m.model_dump(mode="json", exclude_defaults=True) for m in config.models]}))


def _change(args: argparse.Namespace) -> int:
    from appliance.output import print_json, say
    from appliance.registry.requests import ChangeRequests
    from appliance.registry.states import Environment
    from appliance.registry.store import RegistryStore

    config = load(args)  # validate first: a models.yaml with errors is never queued
    environment, model_id, payload = request_payload(args, config)
    store = RegistryStore.open(config.settings.registry_url)
    store.migrate()
    requests = ChangeRequests(store)
    request = requests.submit(
        args.models_action,
        Environment(environment),
        payload,
        model_id=model_id,
        requested_by="cli",
        now=datetime.now(UTC),
    )
    if args.no_wait:
        if args.json:
            print_json({"request": request.to_json()})
        else:
            say(
                f"queued change request {request.id} ({args.models_action}); the serve container applies it: "
                f"python -m appliance models history",
                style="green",
            )
        return 0
    if not args.json:
        say(
            f"change request {request.id} queued; waiting for the serve container to apply it (models load in minutes)…"
        )
    deadline = time.monotonic() + args.timeout
    while not request.finished and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        request = requests.get(request.id) or request
    return report(request, as_json=args.json)


def report(request: Any, *, as_json: bool) -> int:
    from appliance.output import print_json, print_table, say

    if as_json:
        print_json({"request": request.to_json()})
    if not request.finished:
        if not as_json:
            say(
                f"✗ change request {request.id} is still {request.status}: is the stack up (make up)? It is applied "
                "when the serve container takes it; see python -m appliance models history",
                style="bold red",
            )
        return 1
    result = request.result
    if not as_json:
        outcomes = result.get("outcomes") or []
        if outcomes:
            print_table(
                f"change request {request.id} ({request.kind}, {request.environment.value})",
                ["model", "action", "mode", "ok", "entry", "ready s", "smoke s", "reason"],
                [
                    [
                        o["model"],
                        o["action"],
                        o["mode"],
                        "yes" if o["ok"] else "NO",
                        str(o.get("entry") or "-"),
                        _seconds(o, "ready"),
                        _seconds(o, "smoke"),
                        o["reason"],
                    ]
                    for o in outcomes
                ],
            )
        if result.get("ok"):
            say(f"✓ change request {request.id} applied", style="green")
        else:
            say(f"✗ change request {request.id} failed: {result.get('reason') or 'see the table'}", style="bold red")
    return 0 if request.status == "done" and result.get("ok") else 1


def _seconds(outcome: dict[str, Any], key: str) -> str:
    value = (outcome.get("seconds") or {}).get(key)
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"

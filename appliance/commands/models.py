"""``python -m appliance models list|status|history|enable|disable``: the model registry (REGISTRY_URL).

``list``: every recorded revision. ``status [ID]``: per model and environment, the revision changed last,
and configured models never deployed. ``history [ID]``: every state change, oldest first. ``disable ID`` /
``enable ID``: the model's current revision ready → disabled and back, with a reason. ``migrate [--to N]``:
the registry's schema up (default: the newest) or down to version N. ``--json`` on each.
``deploy [--env staging]``, ``promote ID``, ``rollback ID [--to REVISION]``: model changes, applied by the serve
container (:mod:`appliance.commands.model_changes`).
"""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_options, load
from appliance.errors import ApplianceError, UsageError

# Said by enable/disable: the ingress reads the registry (appliance.lifecycle.routing.DisabledModels).
ROUTING_NOTE = "recorded in the registry; the ingress follows within a second (a disabled model answers 404)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "models",
        help="the model registry: deployed revisions, their status and history",
        description=__doc__.split("\n\n")[0],
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    for name, helptext in (
        ("list", "every recorded model revision"),
        ("status", "each model's current revision (exit 1: one failed or never deployed)"),
        ("history", "every state change, oldest first"),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        add_config_options(action)
        if name != "list":
            action.add_argument("model_id", nargs="?", metavar="ID", help="one model (default: all)")
        else:
            action.add_argument("--model", dest="model_id", metavar="ID", help="only this model's revisions")
        if name == "history":
            action.add_argument("--limit", type=int, default=0, metavar="N", help="only the last N changes")
        action.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        action.set_defaults(handler=_run)
    for name, helptext in (
        ("disable", "take a model out of service (its current revision: ready → disabled)"),
        ("enable", "put a disabled model back (disabled → ready)"),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        add_config_options(action)
        action.add_argument("model_id", metavar="ID", help="the model")
        action.add_argument(
            "--environment",
            choices=["production", "staging"],
            default="production",
            help="which environment's revision (default production)",
        )
        action.add_argument("--reason", default="", help="why (kept in the history)")
        action.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        action.set_defaults(handler=_switch)
    from appliance.commands import model_changes

    model_changes.register(actions)
    action = actions.add_parser(
        "migrate",
        help="bring the registry's schema up to date (or down, with --to)",
        description="Apply the registry's schema migrations up to the newest, or down to "
        "--to VERSION (0 removes every table; their data is lost). serve migrates up by "
        "itself.",
    )
    add_config_options(action)
    action.add_argument("--to", type=int, default=None, metavar="VERSION", help="the schema version to reach")
    action.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    action.set_defaults(handler=_migrate)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "-"


def _run(args: argparse.Namespace) -> int:
    from appliance.output import print_json, print_table, say
    from appliance.registry.store import RegistryStore

    config = load(args)
    store = RegistryStore.open(config.settings.registry_url)
    where = store.location.describe()
    configured = [m.id for m in config.models]
    if args.model_id and args.model_id not in configured and store.ready() and not store.entries(args.model_id):
        raise UsageError(
            f"no model {args.model_id!r} in the configuration or the registry; configured: {', '.join(configured)}"
        )
    if not store.ready():
        if args.json:
            print_json({"registry": where, "ready": False, args.models_action: [], "configured": configured})
        else:
            say(f"the model registry ({where}) has no deploy yet: serve records each deploy (make up)", style="yellow")
        return 1 if args.models_action == "status" else 0
    if args.models_action == "list":
        entries = store.entries(args.model_id)
        if args.json:
            print_json({"registry": where, "ready": True, "list": [e.to_json() for e in entries]})
        else:
            print_table(
                f"model revisions ({where})",
                ["entry", "model", "env", "status", "revision", "manifest", "engine args", "changed", "reason"],
                [
                    [
                        str(e.id),
                        e.model_id,
                        e.environment.value,
                        e.status.value,
                        e.revision or "-",
                        _short(e.manifest_digest),
                        _short(e.engine_digest),
                        e.changed_at,
                        e.reason,
                    ]
                    for e in entries
                ],
            )
        return 0
    if args.models_action == "history":
        events = store.history(args.model_id)
        if args.limit > 0:
            events = events[-args.limit :]
        if args.json:
            print_json({"registry": where, "ready": True, "history": [e.to_json() for e in events]})
        else:
            print_table(
                f"model history ({where})",
                ["at", "model", "env", "entry", "change", "reason"],
                [
                    [
                        e.at,
                        e.model_id,
                        e.environment.value,
                        str(e.entry_id),
                        f"{e.from_status.value if e.from_status else 'new'} → {e.to_status.value}",
                        e.reason,
                    ]
                    for e in events
                ],
            )
        return 0
    current = store.current(args.model_id)
    recorded = {e.model_id for e in current}
    never = [m for m in configured if m not in recorded and (not args.model_id or m == args.model_id)]
    problem = bool(never) or any(e.status.value == "failed" for e in current)
    if args.json:
        print_json(
            {
                "registry": where,
                "ready": True,
                "status": [e.to_json() for e in current],
                "never_deployed": never,
                "ok": not problem,
            }
        )
    else:
        rows = [
            [
                e.model_id,
                e.environment.value,
                e.status.value,
                str(e.id),
                e.changed_at,
                e.last_health_check or "-",
                e.reason,
            ]
            for e in current
        ]
        rows += [[m, "-", "never deployed", "-", "-", "-", "in the configuration, not in the registry"] for m in never]
        print_table(
            f"models ({where})", ["model", "env", "status", "entry", "changed", "last health check", "reason"], rows
        )
    return 1 if problem else 0


def _switch(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from appliance.output import print_json, say
    from appliance.registry.states import Environment, Status
    from appliance.registry.store import RegistryStore

    config = load(args)
    store = RegistryStore.open(config.settings.registry_url)
    environment = Environment(args.environment)
    current = [e for e in store.current(args.model_id) if e.environment is environment] if store.ready() else []
    if not current:
        raise UsageError(
            f"model {args.model_id!r} has no {environment.value} revision in the registry "
            f"({store.location.describe()}): see python -m appliance models status"
        )
    target = Status.DISABLED if args.models_action == "disable" else Status.READY
    reason = f"{args.models_action}d by the operator" + (f": {args.reason}" if args.reason else "")
    try:
        entry = store.transition(current[0].id, target, reason=reason, now=datetime.now(UTC))
    except ApplianceError as err:
        say(f"✗ {err}", style="bold red")
        return 1
    if args.json:
        print_json({"entry": entry.to_json(), "routing": ROUTING_NOTE})
    else:
        say(
            f"✓ model {entry.model_id} ({environment.value}, entry {entry.id}) is {entry.status.value}; {ROUTING_NOTE}",
            style="green",
        )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from appliance.output import print_json, say
    from appliance.registry import migrations
    from appliance.registry.store import RegistryStore

    config = load(args)
    if args.to is not None and not 0 <= args.to <= migrations.HEAD:
        raise UsageError(f"--to: expected a schema version from 0 to {migrations.HEAD}, found {args.to}")
    store = RegistryStore.open(config.settings.registry_url)
    steps = store.migrate(args.to)
    version = store.version()
    if args.json:
        print_json(
            {
                "registry": store.location.describe(),
                "version": version,
                "head": migrations.HEAD,
                "steps": [{"version": v, "direction": "up" if up else "down"} for v, up in steps],
            }
        )
    else:
        done = ", ".join(f"{'up to' if up else 'down from'} {v}" for v, up in steps) or "nothing to do"
        say(
            f"✓ registry {store.location.describe()}: schema version {version} (newest {migrations.HEAD}); {done}",
            style="green",
        )
    return 0

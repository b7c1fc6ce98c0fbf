"""``python -m appliance keys create|update|list|revoke``: API keys, shown once, stored as SHA-256 hashes.

``.secrets`` is the one source; the serve container never sees it. ``create``, ``update`` and ``revoke`` also
rewrite the hash-only copy ``make up`` renders for serve (``data/run/serve/api_keys`` beside that ``.secrets``),
which the running ingress reloads within a second. After editing ``.secrets`` by hand, run ``make up`` (it
renders the copy again; a key change restarts nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance.commands.common import add_config_options, load
from appliance.config import ApplianceConfig
from appliance.config.keys import create_key, limit_warnings, parse_limit, revoke_key, update_key
from appliance.config.secrets import ALL_MODELS, LIMIT_FIELDS, ApiKeyRecord, KeyLimits, Role
from appliance.output import print_json, print_table, say

# (flag, KeyLimits field, help)
_LIMIT_FLAGS = (
    ("--rpm", "rpm", "requests per minute"),
    ("--tpm", "tpm", "prompt + completion tokens per minute"),
    ("--daily-tokens", "tokens_per_day", "prompt + completion tokens per UTC day"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "keys",
        help="create, update, list and revoke API keys",
        description="API keys live in .secrets as SHA-256 hashes; a key is shown once.",
    )
    keys = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = keys.add_parser(
        "create",
        help="make a key and print it once",
        description="Make a key, store its hash in .secrets, print the key once on stdout.",
    )
    create.add_argument("name", help="key name (letters, digits, '_'); shown in the audit log and metrics")
    create.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.USER.value,
        help="admin: every model and the admin endpoints; user: --models only (default)",
    )
    create.add_argument(
        "--models", dest="allowed_models", default="", help="comma-separated model ids the key may use, or '*'"
    )
    for flag, field, text in _LIMIT_FLAGS:
        create.add_argument(flag, dest=field, metavar="N", default=None, help=f"budget: {text} (default: unlimited)")
    create.add_argument("--force", action="store_true", help="replace an existing key of that name")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    add_config_options(create, models_flag="--models-file")
    create.set_defaults(handler=run_create)

    update = keys.add_parser(
        "update",
        help="change a key's role, models or budgets; the key stays the same",
        description="Rewrite a key's line in .secrets (atomically), keeping its hash: clients "
        "keep using the same key. Options not given stay as they are.",
    )
    update.add_argument("name", help="key name")
    update.add_argument("--role", choices=[r.value for r in Role], default=None, help="admin or user")
    update.add_argument("--models", dest="allowed_models", default=None, help="comma-separated model ids, or '*'")
    for flag, field, text in _LIMIT_FLAGS:
        update.add_argument(
            flag, dest=field, metavar="N|none", default=None, help=f"budget: {text}; 'none' = unlimited"
        )
    update.add_argument("--json", action="store_true", help="print the new record as JSON")
    add_config_options(update, models_flag="--models-file")
    update.set_defaults(handler=run_update)

    listing = keys.add_parser("list", help="list key names, roles, models and budgets (never the keys)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_config_options(listing)
    listing.set_defaults(handler=run_list)

    revoke = keys.add_parser("revoke", help="remove a key; requests with it get 401 from then on")
    revoke.add_argument("name", help="key name")
    add_config_options(revoke)
    revoke.set_defaults(handler=run_revoke)


def _models(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _describe(record: ApiKeyRecord) -> dict[str, Any]:
    models = "all" if ALL_MODELS in record.models or record.role is Role.ADMIN else ", ".join(record.models)
    return {"name": record.name, "role": record.role.value, "models": models, **record.limits.as_dict()}


def _budgets(limits: KeyLimits) -> str:
    return ", ".join(f"{name} {value}" for name, value in limits.as_dict().items() if value is not None) or "unlimited"


def _warn(record: ApiKeyRecord, config: ApplianceConfig) -> None:
    for warning in limit_warnings(record, {m.id: m.max_tokens_cap for m in config.models if m.task == "generate"}):
        say(f"note: {warning}", style="yellow")


def run_create(args: argparse.Namespace) -> int:
    config = load(args)
    limits = KeyLimits(
        **{
            field: parse_limit(flag, getattr(args, field))
            for flag, field, _ in _LIMIT_FLAGS
            if getattr(args, field) is not None
        }
    )
    key, record = create_key(
        config.files.secrets,
        args.name,
        Role(args.role),
        _models(args.allowed_models),
        existing=config.secrets.api_keys,
        served=[m.id for m in config.models],
        replace=args.force,
        limits=limits,
    )
    _refresh_serve_keys(config.files.secrets)
    if args.json:
        print_json(
            {
                "name": record.name,
                "role": record.role.value,
                "models": list(record.models),
                **record.limits.as_dict(),
                "key": key,
            }
        )
    else:
        say(
            f"created key {record.name!r} (role {record.role.value}, models {','.join(record.models)}, "
            f"budgets: {_budgets(record.limits)}); it is shown once — store it now:"
        )
        print(key)
    _warn(record, config)
    return 0


def run_update(args: argparse.Namespace) -> int:
    config = load(args)
    changes = {
        field: parse_limit(flag, getattr(args, field), allow_none=True)
        for flag, field, _ in _LIMIT_FLAGS
        if getattr(args, field) is not None
    }
    record = update_key(
        config.files.secrets,
        args.name,
        existing=config.secrets.api_keys,
        served=[m.id for m in config.models],
        role=Role(args.role) if args.role else None,
        models=_models(args.allowed_models) if args.allowed_models is not None else None,
        limits=changes,
    )
    if record is None:
        say(f"no key named {args.name.lower()!r}; see: python -m appliance keys list", style="red")
        return 1
    _refresh_serve_keys(config.files.secrets)
    if args.json:
        print_json(_describe(record))
    else:
        say(
            f"updated key {record.name!r} (role {record.role.value}, models {','.join(record.models)}, "
            f"budgets: {_budgets(record.limits)}); the key itself is unchanged; the ingress applies it within seconds"
        )
    _warn(record, config)
    return 0


def run_list(args: argparse.Namespace) -> int:
    config = load(args)
    described = [_describe(r) for r in sorted(config.secrets.api_keys, key=lambda r: r.name)]
    if args.json:
        print_json(described)
    elif described:
        rows = [
            [d["name"], d["role"], d["models"], *("-" if d[f] is None else str(d[f]) for f in LIMIT_FIELDS)]
            for d in described
        ]
        print_table("API keys (budgets: - = unlimited)", ["name", "role", "models", "rpm", "tpm", "tokens/day"], rows)
    else:
        say("no API keys yet: python -m appliance keys create admin --role admin")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    config = load(args)
    if revoke_key(config.files.secrets, args.name):
        _refresh_serve_keys(config.files.secrets)
        say(f"revoked key {args.name.lower()!r}")
        return 0
    say(f"no key named {args.name.lower()!r}; see: python -m appliance keys list", style="red")
    return 1


def _refresh_serve_keys(secrets_file: Path) -> None:
    """The stack's hash-only key file follows .secrets (when ``make up`` has rendered one beside it)."""
    from appliance.serve.keystore import read_key_records
    from appliance.stack.render import RUN_DIR, refresh_api_keys

    refresh_api_keys(read_key_records(secrets_file), secrets_file.resolve().parent / RUN_DIR)

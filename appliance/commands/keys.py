"""``python -m appliance keys create|list|revoke``: API keys, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_options, load
from appliance.config.keys import create_key, revoke_key
from appliance.config.secrets import ALL_MODELS, Role
from appliance.output import print_json, print_table, say


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="create, list and revoke API keys",
                            description="API keys live in .secrets as SHA-256 hashes; a key is shown once.")  # fmt: skip
    keys = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = keys.add_parser("create", help="make a key and print it once",
                             description="Make a key, store its hash in .secrets, print the key once on stdout.")  # fmt: skip
    create.add_argument("name", help="key name (letters, digits, '_'); shown in the audit log and metrics")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value,
                        help="admin: every model and the admin endpoints; user: --models only (default)")  # fmt: skip
    create.add_argument("--models", dest="allowed_models", default="", help="comma-separated model ids the key may use, or '*'")
    create.add_argument("--force", action="store_true", help="replace an existing key of that name")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    add_config_options(create, models_flag="--models-file")
    create.set_defaults(handler=run_create)

    listing = keys.add_parser("list", help="list key names, roles and models (never the keys)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_config_options(listing)
    listing.set_defaults(handler=run_list)

    revoke = keys.add_parser("revoke", help="remove a key; requests with it get 401 from then on")
    revoke.add_argument("name", help="key name")
    add_config_options(revoke)
    revoke.set_defaults(handler=run_revoke)


def run_create(args: argparse.Namespace) -> int:
    config = load(args)
    models = tuple(m.strip() for m in args.allowed_models.split(",") if m.strip())
    key, record = create_key(
        config.files.secrets, args.name, Role(args.role), models,
        existing=config.secrets.api_keys, served=[m.id for m in config.models], replace=args.force,
    )  # fmt: skip
    if args.json:
        print_json({"name": record.name, "role": record.role.value, "models": list(record.models), "key": key})
    else:
        say(f"created key {record.name!r} (role {record.role.value}, models {','.join(record.models)}); "
            "it is shown once — store it now:")  # fmt: skip
        print(key)
    return 0


def run_list(args: argparse.Namespace) -> int:
    config = load(args)
    rows = [[r.name, r.role.value, "all" if ALL_MODELS in r.models or r.role is Role.ADMIN else ", ".join(r.models)]
            for r in sorted(config.secrets.api_keys, key=lambda r: r.name)]  # fmt: skip
    if args.json:
        print_json([{"name": n, "role": role, "models": m} for n, role, m in rows])
    elif rows:
        print_table("API keys", ["name", "role", "models"], rows)
    else:
        say("no API keys yet: python -m appliance keys create admin --role admin")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    config = load(args)
    if revoke_key(config.files.secrets, args.name):
        say(f"revoked key {args.name.lower()!r}")
        return 0
    say(f"no key named {args.name.lower()!r}; see: python -m appliance keys list", style="red")
    return 1

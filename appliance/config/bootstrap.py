"""First-run set-up of the config files: copy the examples when missing, generate empty passwords.

Idempotent: a second run changes nothing, and an existing file is never overwritten, only completed
(an empty generated password is filled in).
"""

from __future__ import annotations

import os
import secrets as _random
import shutil
from pathlib import Path

from appliance.config.dotenv import parse_dotenv
from appliance.config.envfile import set_value

GENERATED_PASSWORDS = ("GRAFANA_ADMIN_PASSWORD", "DASHBOARD_PASSWORD")


def new_password() -> str:
    return _random.token_urlsafe(24)


def ensure_config_files(root: Path, env: Path, secrets: Path) -> list[str]:
    """Create ``env`` and ``secrets`` from the examples in ``root`` when missing. Returns what was done."""
    done: list[str] = []
    for target, example in ((env, root / ".env.example"), (secrets, root / ".secrets.example")):
        if target.exists():
            continue
        if not example.exists():
            raise FileNotFoundError(f"{example} is missing; it ships with the appliance — restore it from git")
        shutil.copyfile(example, target)
        os.chmod(target, 0o600)
        done.append(f"created {target} from {example.name} (mode 0600)")
    parsed = parse_dotenv(secrets.read_text(encoding="utf-8"), str(secrets), secret=True)
    for key in GENERATED_PASSWORDS:
        entry = parsed.entries.get(key)
        if entry is None or not entry.value:
            set_value(secrets, key, new_password())
            done.append(f"generated {key} in {secrets}")
    return done

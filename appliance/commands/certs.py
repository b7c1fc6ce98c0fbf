"""``python -m appliance certs status|renew``: the live TLS certificate, and renewing it now."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from appliance.certs.errors import CertError
from appliance.certs.inspect import days_left, load_cert_info, utc_now
from appliance.certs.nginx_control import local_nginx
from appliance.certs.renewal import fits, renew, should_renew
from appliance.certs.store import DEFAULT_CERTS_ROOT, CertPaths, served_name
from appliance.commands.common import add_config_options, load
from appliance.output import print_json, print_table, say

_LOGGER = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "certs",
        help="inspect and renew the TLS certificate",
        description="The certificate nginx serves: its facts, and renewing it (acme: certbot; "
        "self-signed: a new pair; provided: your files, checked).",
    )
    actions = parser.add_subparsers(dest="certs_command", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        help="subject, SANs, issuer, days left and mode of the live certificate",
        description="Exit 0 when the certificate is fine, 1 when it is missing, expired, "
        "due for renewal or not the kind TLS_MODE wants.",
    )
    status.add_argument("--json", action="store_true", help="print JSON on stdout")
    _common(status)
    status.set_defaults(handler=run_status)

    renew_ = actions.add_parser(
        "renew",
        help="renew the certificate when due (or --force)",
        description="Obtain a new pair, check it, swap it in atomically, nginx -t, reload. "
        "On any failure the previous certificate keeps serving. Exit 1 on failure.",
    )
    renew_.add_argument("--force", action="store_true", help="renew even when not due")
    renew_.add_argument(
        "--dry-run", action="store_true", help="check that renewal would work (acme: certbot --dry-run); change nothing"
    )
    renew_.add_argument(
        "--nginx-conf",
        type=Path,
        default=None,
        help="the rendered nginx.conf of an nginx on this host to test and reload; without it nginx "
        "is not reloaded (in the stack the supervisor does)",
    )
    renew_.add_argument("--json", action="store_true", help="print JSON on stdout")
    _common(renew_)
    renew_.set_defaults(handler=run_renew)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--certs-dir",
        type=Path,
        default=DEFAULT_CERTS_ROOT,
        help=f"the certificate area: live/<name>/fullchain.pem, privkey.pem (default {DEFAULT_CERTS_ROOT})",
    )
    add_config_options(parser)


def run_status(args: argparse.Namespace) -> int:
    config = load(args)
    paths = CertPaths(args.certs_dir)
    name = served_name(config.settings)
    mode = config.settings.tls_mode.value
    now = utc_now()
    path = paths.fullchain(name)
    try:
        cert = load_cert_info(path)
    except CertError as err:
        if args.json:
            print_json({"ok": False, "mode": mode, "name": name, "path": str(path), "problems": [str(err)]})
        else:
            say(f"✗ {err} (hint: python -m appliance certs renew makes one)", style="bold red")
        return 1
    left = days_left(cert, now)
    due = should_renew(cert, now, renew_before_days=config.settings.cert_renew_before_days)
    problems = []
    if left <= 0:
        problems.append("expired")
    elif due:
        problems.append("due for renewal")
    if not fits(cert, config):
        problems.append(f"not the certificate TLS_MODE={mode} wants (self-signed bootstrap, or DOMAIN not covered)")
    if args.json:
        print_json(
            {
                "ok": not problems,
                "mode": mode,
                "name": name,
                "path": str(path),
                "subject": cert.subject,
                "sans": list(cert.sans),
                "issuer": cert.issuer,
                "serial": f"{cert.serial:x}",
                "not_before": cert.not_before.isoformat(),
                "not_after": cert.not_after.isoformat(),
                "days_left": round(left, 1),
                "due": due,
                "problems": problems,
            }
        )
    else:
        print_table(
            f"certificate {name} ({path})",
            ["field", "value"],
            [
                ["mode", mode],
                ["subject", cert.subject],
                ["SANs", ", ".join(cert.sans) or "(none)"],
                ["issuer", cert.issuer],
                ["serial", f"{cert.serial:x}"],
                ["valid", f"{cert.not_before:%Y-%m-%d} → {cert.not_after:%Y-%m-%d %H:%M} UTC"],
                ["days left", f"{left:.1f}"],
                ["renewal due", "yes" if due else "no"],
            ],
        )
        for problem in problems:
            say(f"✗ {problem} (fix: python -m appliance certs renew)", style="bold red")
    return 1 if problems else 0


def _alert(title: str, text: str) -> None:
    _LOGGER.error("%s: %s", title, text, extra={"alert": title})
    say(f"✗ {title}: {text}", style="bold red")


def run_renew(args: argparse.Namespace) -> int:
    config = load(args)
    test = reload = None
    if args.nginx_conf is not None:
        test, reload = local_nginx(args.nginx_conf)
    result = renew(
        config,
        force=args.force,
        dry_run=args.dry_run,
        alert=_alert,
        test_nginx=test,
        reload_nginx=reload,
        paths=CertPaths(args.certs_dir),
    )
    if args.json:
        cert = result.cert
        print_json(
            {
                "ok": result.ok,
                "renewed": result.renewed,
                "reason": result.reason,
                "serial": f"{cert.serial:x}" if cert else None,
                "not_after": cert.not_after.isoformat() if cert else None,
            }
        )
    elif result.ok:
        say(
            f"✓ {result.reason}"
            + (
                ""
                if not result.renewed or reload
                else "; nginx was not reloaded (no --nginx-conf): it serves the new certificate from its next reload"
            ),
            style="green",
        )
    return 0 if result.ok else 1

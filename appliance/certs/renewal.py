"""Deciding (pure) and doing (acting) certificate renewal for the three TLS modes.

``should_renew`` decides from data. ``renew`` acts: it obtains a new pair (certbot for ``acme``, a new
self-signed pair, or the user's files for ``provided``), validates it, swaps it in atomically, runs
``nginx -t`` and reloads nginx. On ANY failure the previous pair is put back (nginx keeps serving it),
nothing half-written is left, and ``alert(title, text)`` is called.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from appliance.certs.certbot import CertbotRequest, run_certbot
from appliance.certs.errors import CertError
from appliance.certs.inspect import CertInfo, days_left, load_cert_info, utc_now
from appliance.certs.selfsigned import host_names, make_self_signed
from appliance.certs.store import (
    CHAIN,
    DEFAULT_CERTS_ROOT,
    FULLCHAIN,
    PRIVKEY,
    CertPaths,
    roll_back,
    served_name,
    swap_in,
    write_pair,
)
from appliance.certs.validate import chain_pem, check_pair
from appliance.config.loader import ApplianceConfig
from appliance.config.settings import TlsMode

_LOGGER = logging.getLogger(__name__)

Alert = Callable[[str, str], None]


def should_renew(cert: CertInfo, now: datetime, *, renew_before_days: int = 30) -> bool:
    """Renew when a third of the lifetime or ``renew_before_days`` remain, whichever comes first."""
    remaining = cert.not_after - now
    return remaining <= max(timedelta(days=renew_before_days), (cert.not_after - cert.not_before) / 3)


@dataclass(frozen=True)
class RenewalResult:
    ok: bool
    reason: str
    cert: CertInfo | None = None
    renewed: bool = False  # a new pair went live


def _log_alert(title: str, text: str) -> None:
    _LOGGER.error("%s: %s", title, text, extra={"alert": title})


def renew(
    config: ApplianceConfig,
    *,
    force: bool = False,
    dry_run: bool = False,
    alert: Alert | None = None,
    reload_nginx: Callable[[], None] | None = None,
    test_nginx: Callable[[], None] | None = None,
    paths: CertPaths | None = None,
    now: datetime | None = None,
    certbot_env: Mapping[str, str] | None = None,
    certbot_timeout: float = 300,
) -> RenewalResult:
    """Renew the live certificate when due (or ``force``). Never raises for an expected failure: the
    result says what happened and ``alert`` was called. ``test_nginx``/``reload_nginx`` raise on failure."""
    alert = _log_alert if alert is None else alert
    paths = paths or CertPaths(DEFAULT_CERTS_ROOT)
    fixed = now

    def clock() -> datetime:  # the new pair is checked at the time it arrives (or the caller's fixed time)
        return fixed if fixed is not None else utc_now()

    now = clock()
    name = served_name(config.settings)
    s = config.settings
    current = _current(paths, name)
    due = (
        current is None
        or not fits(current, config)
        or should_renew(current, now, renew_before_days=s.cert_renew_before_days)
    )
    if s.tls_mode is TlsMode.PROVIDED:
        return _install_provided(config, paths, name, current, now, dry_run, alert, test_nginx, reload_nginx)
    if not (due or force):
        left = days_left(current, now) if current else 0
        return RenewalResult(True, f"not due: {left:.0f} days left", current)
    staging = Path(tempfile.mkdtemp(dir=_ensure(paths.live), prefix=f".{name}.new-"))
    try:
        if s.tls_mode is TlsMode.ACME:
            _obtain_acme(
                config,
                paths,
                name,
                staging,
                force=force or due,
                dry_run=dry_run,
                env=certbot_env,
                timeout=certbot_timeout,
            )
            if dry_run:
                return RenewalResult(True, "dry run: the ACME server would issue a certificate", current)
        else:
            _obtain_self_signed(staging, s.domain or None, now, current)
            if dry_run:
                return RenewalResult(True, "dry run: a self-signed certificate can be made", current)
        info = check_pair(
            staging / FULLCHAIN,
            staging / PRIVKEY,
            domain=s.domain,
            now=clock(),
            require_chain=s.tls_mode is TlsMode.ACME,
        )
        return _go_live(staging, paths.live_dir(name), info, alert, test_nginx, reload_nginx, current)
    except CertError as err:
        return _failed(alert, name, str(err), current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fits(current: CertInfo | None, config: ApplianceConfig) -> bool:
    """Whether the live certificate is the kind the mode wants: it covers DOMAIN, and with ``acme`` it is
    not the self-signed bootstrap pair. A live pair that does not fit is due now."""
    if current is None:
        return False
    s = config.settings
    if s.domain and not current.covers(s.domain):
        return False
    return not (s.tls_mode is TlsMode.ACME and current.issuer == current.subject)


def ensure_bootstrap(config: ApplianceConfig, paths: CertPaths, *, now: datetime | None = None) -> CertInfo:
    """A live pair nginx can start with: the existing one, else a self-signed one (ACME needs nginx up to
    answer its first challenge; provided mode replaces it on the first ``renew``)."""
    name = served_name(config.settings)
    current = _current(paths, name)
    if current is not None:
        return current
    names = [config.settings.domain, *host_names()] if config.settings.domain else host_names()
    cert, key = make_self_signed(list(dict.fromkeys(names)), now=now)
    write_pair(paths.live_dir(name), cert, key)
    return load_cert_info(paths.fullchain(name))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _current(paths: CertPaths, name: str) -> CertInfo | None:
    try:
        return load_cert_info(paths.fullchain(name))
    except CertError:
        return None


def _failed(alert: Alert, name: str, why: str, current: CertInfo | None) -> RenewalResult:
    alert("certificate renewal failed", f"{name}: {why}; the previous certificate keeps serving")
    return RenewalResult(False, why, current)


def _copy(src: Path, dst: Path, mode: int) -> None:
    dst.write_bytes(src.read_bytes())
    dst.chmod(mode)


def _obtain_acme(
    config: ApplianceConfig,
    paths: CertPaths,
    name: str,
    staging: Path,
    *,
    force: bool,
    dry_run: bool,
    env: Mapping[str, str] | None,
    timeout: float,
) -> None:
    s = config.settings
    request = CertbotRequest(
        domain=s.domain,
        email=s.acme_email,
        server=directory_url(s.acme_directory_url, s.acme_staging),
        webroot=_ensure(paths.webroot),
        state_dir=paths.certbot_dir,
        cert_name=name,
        force=force,
        dry_run=dry_run,
    )
    lineage = run_certbot(request, env=env, timeout=timeout)
    if dry_run:
        return
    _copy(lineage / "fullchain.pem", staging / FULLCHAIN, 0o644)
    _copy(lineage / "privkey.pem", staging / PRIVKEY, 0o600)
    (staging / CHAIN).write_bytes(chain_pem(staging / FULLCHAIN))


def directory_url(configured: str, staging: bool) -> str:
    if configured:
        return configured
    if staging:
        return "https://acme-staging-v02.api.letsencrypt.org/directory"
    return "https://acme-v02.api.letsencrypt.org/directory"


def _obtain_self_signed(staging: Path, domain: str | None, now: datetime, current: CertInfo | None) -> None:
    """A new self-signed pair for the names the current one covers (the host's, from ``make up``: the supervisor
    renews inside its container, whose own host name and address no client uses), else this host's names."""
    covered = list(current.sans) if current is not None and current.sans else host_names()
    names = [domain, *covered] if domain else covered
    cert, key = make_self_signed(list(dict.fromkeys(names)), now=now)
    (staging / FULLCHAIN).write_bytes(cert)
    (staging / PRIVKEY).write_bytes(key)
    (staging / PRIVKEY).chmod(0o600)


def _install_provided(
    config: ApplianceConfig,
    paths: CertPaths,
    name: str,
    current: CertInfo | None,
    now: datetime,
    dry_run: bool,
    alert: Alert,
    test_nginx: Callable[[], None] | None,
    reload_nginx: Callable[[], None] | None,
) -> RenewalResult:
    """Provided mode: check the user's files and put them live when they differ from what is serving."""
    s = config.settings
    cert_path, key_path = Path(s.tls_cert_path), Path(s.tls_key_path)
    try:
        info = check_pair(cert_path, key_path, domain=s.domain, now=now)
    except CertError as err:
        return _failed(alert, name, str(err), current)
    if should_renew(info, now, renew_before_days=s.cert_renew_before_days):
        alert(
            "provided certificate expires soon",
            f"{cert_path}: {days_left(info, now):.0f} days left; replace the files at TLS_CERT_PATH/TLS_KEY_PATH",
        )
    if current is not None and current.serial == info.serial:
        return RenewalResult(True, "the provided certificate is already serving", info)
    if dry_run:
        return RenewalResult(True, "dry run: the provided certificate is valid and would go live", current)
    staging = Path(tempfile.mkdtemp(dir=_ensure(paths.live), prefix=f".{name}.new-"))
    try:
        _copy(cert_path, staging / FULLCHAIN, 0o644)
        _copy(key_path, staging / PRIVKEY, 0o600)
        (staging / CHAIN).write_bytes(chain_pem(staging / FULLCHAIN))
        return _go_live(staging, paths.live_dir(name), info, alert, test_nginx, reload_nginx, current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _go_live(
    staging: Path,
    live: Path,
    info: CertInfo,
    alert: Alert,
    test_nginx: Callable[[], None] | None,
    reload_nginx: Callable[[], None] | None,
    current: CertInfo | None,
) -> RenewalResult:
    """Swap the staged pair in, then nginx -t and reload; any failure puts the previous pair back."""
    staging.chmod(0o755)
    swap_in(staging, live)  # staging became the live version (the caller's clean-up finds nothing)
    try:
        if test_nginx:
            test_nginx()
        if reload_nginx:
            reload_nginx()
    except Exception as err:
        restored = roll_back(live)
        if restored and reload_nginx:
            try:
                reload_nginx()
            except Exception:
                _LOGGER.exception("reload after roll-back failed")
        return _failed(alert, live.name, f"nginx refused the new certificate: {err}", current)
    _LOGGER.info(
        "certificate live",
        extra={"certificate": live.name, "serial": f"{info.serial:x}", "not_after": info.not_after.isoformat()},
    )
    return RenewalResult(True, "renewed", info, renewed=True)

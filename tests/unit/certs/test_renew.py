"""renew() for self-signed and provided modes, with injected nginx test/reload (the real nginx and the
ACME path run in tests/integration/edge): swap, roll-back on failure, alerts, dry runs, nothing left over."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from appliance.certs.inspect import load_cert_info
from appliance.certs.renewal import ensure_bootstrap, fits, renew
from appliance.certs.store import CertPaths
from appliance.config import ConfigFiles, load_config
from tests.helpers import make_config_dir, set_line
from tests.unit.certs.certmaker import NOW, Ca

DOMAIN = "llm.example.com"


def _config(tmp_path: Path, **env: str):
    root = tmp_path / "config"
    root.mkdir(exist_ok=True)
    make_config_dir(root)
    for key, value in env.items():
        set_line(root / ".env", key, value)
    return load_config(ConfigFiles(env=root / ".env", secrets=root / ".secrets", models=root / "models.yaml"))


class Recorder:
    def __init__(self, fail_test: bool = False) -> None:
        self.calls: list[str] = []
        self.alerts: list[tuple[str, str]] = []
        self.fail_test = fail_test

    def test(self) -> None:
        self.calls.append("test")
        if self.fail_test:
            raise RuntimeError("nginx: [emerg] cannot load certificate")

    def reload(self) -> None:
        self.calls.append("reload")

    def alert(self, title: str, text: str) -> None:
        self.alerts.append((title, text))

    def kwargs(self) -> dict:
        return {"test_nginx": self.test, "reload_nginx": self.reload, "alert": self.alert}


def _hidden(paths: CertPaths) -> list[str]:
    return sorted(p.name for p in paths.live.iterdir() if ".new-" in p.name or p.name.endswith(".failed"))


def test_self_signed_first_issue_then_not_due_then_forced(tmp_path: Path) -> None:
    config, paths, rec = _config(tmp_path), CertPaths(tmp_path / "certs"), Recorder()
    first = renew(config, paths=paths, **rec.kwargs())
    assert first.ok and first.renewed and "localhost" in first.cert.sans and "127.0.0.1" in first.cert.sans
    assert rec.calls == ["test", "reload"]
    assert paths.privkey("localhost").stat().st_mode & 0o777 == 0o600
    again = renew(config, paths=paths, **rec.kwargs())
    assert again.ok and not again.renewed and again.reason.startswith("not due")
    forced = renew(config, paths=paths, force=True, **rec.kwargs())
    assert forced.renewed and forced.cert.serial != first.cert.serial
    assert rec.alerts == [] and _hidden(paths) == []


def test_nginx_refusing_the_new_pair_rolls_back_and_alerts(tmp_path: Path) -> None:
    config, paths = _config(tmp_path), CertPaths(tmp_path / "certs")
    old = renew(config, paths=paths, **Recorder().kwargs()).cert
    rec = Recorder(fail_test=True)
    result = renew(config, paths=paths, force=True, **rec.kwargs())
    assert not result.ok and "cannot load certificate" in result.reason
    assert load_cert_info(paths.fullchain("localhost")).serial == old.serial
    assert rec.calls == ["test", "reload"]  # the reload after the roll-back
    assert rec.alerts and rec.alerts[0][0] == "certificate renewal failed"
    assert _hidden(paths) == []


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    config, paths, rec = _config(tmp_path), CertPaths(tmp_path / "certs"), Recorder()
    result = renew(config, paths=paths, dry_run=True, **rec.kwargs())
    assert result.ok and not result.renewed and rec.calls == []
    assert not paths.fullchain("localhost").exists()


def test_provided_files_are_checked_and_installed(tmp_path: Path) -> None:
    cert, key = Ca().write(tmp_path / "mine", [DOMAIN], start=NOW - timedelta(days=1), days=90)
    config = _config(tmp_path, TLS_MODE="provided", DOMAIN=DOMAIN, TLS_CERT_PATH=str(cert), TLS_KEY_PATH=str(key))
    paths, rec = CertPaths(tmp_path / "certs"), Recorder()
    result = renew(config, paths=paths, now=NOW, **rec.kwargs())
    assert result.ok and result.renewed and load_cert_info(paths.fullchain(DOMAIN)).serial == result.cert.serial
    assert (paths.live_dir(DOMAIN) / "chain.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    same = renew(config, paths=paths, now=NOW, **rec.kwargs())
    assert same.ok and not same.renewed and rec.alerts == []
    late = renew(config, paths=paths, now=NOW + timedelta(days=70), **rec.kwargs())
    assert late.ok and rec.alerts[0][0] == "provided certificate expires soon"


def test_provided_mismatch_is_refused_and_the_old_pair_keeps_serving(tmp_path: Path) -> None:
    ca = Ca()
    good_cert, good_key = ca.write(tmp_path / "good", [DOMAIN])
    config = _config(
        tmp_path, TLS_MODE="provided", DOMAIN=DOMAIN, TLS_CERT_PATH=str(good_cert), TLS_KEY_PATH=str(good_key)
    )
    paths = CertPaths(tmp_path / "certs")
    serving = renew(config, paths=paths, now=NOW, **Recorder().kwargs()).cert
    _, other_key = ca.write(tmp_path / "other", [DOMAIN])
    good_key.write_bytes(other_key.read_bytes())
    rec = Recorder()
    result = renew(config, paths=paths, now=NOW, **rec.kwargs())
    assert not result.ok and "different key" in result.reason and rec.calls == []
    assert rec.alerts[0][0] == "certificate renewal failed"
    assert load_cert_info(paths.fullchain(DOMAIN)).serial == serving.serial


def test_acme_bootstrap_pair_is_due_at_once(tmp_path: Path) -> None:
    config = _config(tmp_path, TLS_MODE="acme", DOMAIN="appliance.test", ACME_EMAIL="ops@appliance.test")
    paths = CertPaths(tmp_path / "certs")
    boot = ensure_bootstrap(config, paths)
    assert boot.issuer == boot.subject == "appliance.test"
    assert ensure_bootstrap(config, paths) == boot  # idempotent
    assert ensure_bootstrap(config, paths) == boot
    assert not fits(boot, config)


def test_forced_dry_run_never_touches_live(tmp_path: Path) -> None:
    config, paths = _config(tmp_path), CertPaths(tmp_path / "certs")
    ensure_bootstrap(config, paths)
    before = paths.fullchain("localhost").read_bytes()
    assert renew(config, paths=paths, dry_run=True, force=True, **Recorder().kwargs()).ok
    assert paths.fullchain("localhost").read_bytes() == before


def test_a_self_signed_renewal_keeps_the_names_the_current_pair_covers(tmp_path: Path) -> None:
    """The supervisor renews inside its container: the new pair must cover the host's names from ``make up``,
    not the container's own host name and address."""
    from appliance.certs.selfsigned import make_self_signed
    from appliance.certs.store import write_pair

    config, paths, rec = _config(tmp_path), CertPaths(tmp_path / "certs"), Recorder()
    names = ["localhost", "127.0.0.1", "gpu-box.lan", "192.168.7.20"]
    cert, key = make_self_signed(names, now=NOW - timedelta(days=400), days=397)  # expired 3 days ago
    write_pair(paths.live_dir("localhost"), cert, key)
    renewed = renew(config, paths=paths, now=NOW, **rec.kwargs())
    assert renewed.ok and renewed.renewed, renewed.reason
    assert sorted(renewed.cert.sans) == sorted(names) and renewed.cert.not_after > NOW

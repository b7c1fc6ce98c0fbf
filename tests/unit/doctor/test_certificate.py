"""The certificate check watches the pair nginx serves (live/<DOMAIN>, else live/localhost) and judges it as
renewal does: key matches, SAN covers DOMAIN, chain in order, valid now; then days left."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.certs.store import CertPaths, served_certificate
from appliance.doctor.checks import Certificate
from appliance.doctor.finding import Level
from appliance.supervisor.jobs import RenewalJob
from appliance.telemetry.notifier import SupervisorNotifier
from appliance.telemetry.supervisor_metrics import SupervisorMetrics
from tests.unit.certs.certmaker import NOW, Ca

DOMAIN = "serve.example.com"  # sorts after "localhost" (the old glob took the first in sorted order)


def _ctx(make_ctx, tmp_path: Path, **env: str):
    ctx = make_ctx(**env)
    if ctx.config is None:
        pytest.fail(f"config rejected: {[i.render() for i in ctx.config_issues]}")
    ctx.certs_root, ctx.now = tmp_path / "certs", NOW
    return ctx


def _live(ctx, name: str) -> Path:
    return CertPaths(ctx.certs_root).live_dir(name)


@pytest.mark.parametrize(("days", "level"), [(60, Level.OK), (10, Level.WARNING), (2, Level.ERROR)])
def test_days_left_of_the_served_pair(make_ctx, tmp_path: Path, days: int, level: Level) -> None:
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    Ca().write(_live(ctx, DOMAIN), [DOMAIN], start=NOW - timedelta(days=80), days=80 + days)
    findings = Certificate().run(ctx)
    assert [f.level for f in findings] == [level]


def test_a_leftover_localhost_pair_is_not_what_is_watched(make_ctx, tmp_path: Path) -> None:
    """The bug: with DOMAIN set, doctor and the days-left metric took the first live/* in sorted order (the
    stale self-signed localhost pair) while nginx serves live/<DOMAIN>."""
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    Ca().write(_live(ctx, "localhost"), ["localhost"], days=365)  # fine for a year, and first in sorted order
    Ca().write(_live(ctx, DOMAIN), [DOMAIN], start=NOW - timedelta(days=88), days=90)  # 2 days left
    finding = Certificate().run(ctx)[0]
    assert finding.level is Level.ERROR and str(_live(ctx, DOMAIN)) in finding.found

    served = served_certificate(ctx.config.settings, ctx.certs_root)
    assert served == _live(ctx, DOMAIN) / "fullchain.pem"
    metrics = SupervisorMetrics()
    job = RenewalJob(ctx.config, SupervisorNotifier(metrics), cert_path=served, renew=lambda config, **_: None)
    asyncio.run(job())
    left = metrics.cert_days_left._value.get()
    print(f"days-left metric: {left:.1f}")
    assert left < 3  # the DOMAIN pair's 2 days (real clock: certmaker's NOW is in the past → negative)


def test_without_a_domain_the_localhost_pair_is_served(make_ctx, tmp_path: Path) -> None:
    ctx = _ctx(make_ctx, tmp_path)
    assert not ctx.config.settings.domain
    Ca().write(_live(ctx, "localhost"), ["localhost"], days=365)
    Ca().write(_live(ctx, "aaa.example.com"), ["aaa.example.com"], start=NOW - timedelta(days=89), days=90)
    assert [f.level for f in Certificate().run(ctx)] == [Level.OK]


def test_no_certificate_yet(make_ctx, tmp_path: Path) -> None:
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    Ca().write(_live(ctx, "localhost"), ["localhost"])  # not served with a DOMAIN
    finding = Certificate().run(ctx)[0]
    assert finding.level is Level.INFO and DOMAIN in finding.found


def test_a_key_of_another_certificate(make_ctx, tmp_path: Path) -> None:
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    ca = Ca()
    cert, key = ca.write(_live(ctx, DOMAIN), [DOMAIN])
    _, other_key = ca.leaf([DOMAIN])
    key.write_bytes(
        other_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    finding = Certificate().run(ctx)[0]
    assert finding.level is Level.ERROR and "different key" in finding.found


def test_a_certificate_for_another_name(make_ctx, tmp_path: Path) -> None:
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    Ca().write(_live(ctx, DOMAIN), ["other.example.com"])
    finding = Certificate().run(ctx)[0]
    assert finding.level is Level.ERROR and f"DOMAIN={DOMAIN}" in finding.found


def test_a_chain_out_of_order(make_ctx, tmp_path: Path) -> None:
    ctx = _ctx(make_ctx, tmp_path, DOMAIN=DOMAIN)
    ca = Ca()
    cert, _ = ca.write(_live(ctx, DOMAIN), [DOMAIN])
    pem = cert.read_bytes()
    leaf_end = pem.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----\n")
    cert.write_bytes(pem[:leaf_end] + Ca("Another CA").cert.public_bytes(serialization.Encoding.PEM))
    finding = Certificate().run(ctx)[0]
    assert finding.level is Level.ERROR and "second in the chain" in finding.found

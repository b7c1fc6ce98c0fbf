"""The TLS domain resolves to this host (a warning only: offline, or behind NAT, it cannot be told)."""

from __future__ import annotations

import socket

from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class DomainDns(Check):
    slug = "domain-dns"
    title = "domain resolves to this host"

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and bool(ctx.config.settings.domain)

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        domain = ctx.config.settings.domain
        try:
            addresses = probes.resolve(domain)
        except (socket.gaierror, OSError) as err:
            return [
                self.problem(
                    Level.WARNING,
                    f"{domain} resolves to this host",
                    f"does not resolve ({err})",
                    f"add an A/AAAA record for {domain} pointing at this host (offline: ignore)",
                )
            ]
        mine = probes.local_addresses()
        if addresses & mine:
            return [self.ok(found=", ".join(sorted(addresses)), expected="one of this host's addresses")]
        return [
            self.problem(
                Level.WARNING,
                f"{domain} → one of {', '.join(sorted(mine))}",
                ", ".join(sorted(addresses)),
                "point the DNS record at this host (behind NAT: at its public address; then ignore)",
            )
        ]

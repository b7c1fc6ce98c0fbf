"""``.secrets`` is readable only by its owner (mode 0600) and owned by the user running the appliance."""

from __future__ import annotations

import os
import stat

from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level


class SecretsFile(Check):
    slug = "secrets-mode"
    title = ".secrets mode and owner"
    needs_config = False

    def run(self, ctx: DoctorContext) -> list[Finding]:
        path = ctx.files.secrets
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return [self.problem(Level.ERROR, f"{path} to exist", "missing", "python -m appliance init")]
        mode = stat.S_IMODE(st.st_mode)
        findings = []
        if mode != 0o600:
            findings.append(self.problem(Level.ERROR, "mode 0600", f"mode {mode:04o}", f"chmod 600 {path}"))
        uid = os.getuid()
        if st.st_uid != uid:
            findings.append(
                self.problem(Level.WARNING, f"owner uid {uid} (you)", f"uid {st.st_uid}", f"sudo chown {uid} {path}")
            )
        return findings or [self.ok(found=f"{path}: 0600, yours", expected="0600, owned by you")]

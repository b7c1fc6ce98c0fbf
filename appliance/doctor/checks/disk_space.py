"""Free disk for the model cache and the logs. The model cache counts only when a model is downloaded from the
Hugging Face Hub: models served from local paths never write to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.doctor.base import Check
from appliance.doctor.checks.gpu_memory import hub_cache
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.lifecycle.sources import is_local

GIB = 1024**3
MIN_MODEL_CACHE_GIB = 50
MIN_LOGS_GIB = 2


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class DiskSpace(Check):
    slug = "disk"
    title = "free disk space"
    in_stack = True

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        wanted: dict[str, tuple[Path, int]] = {}
        findings = []
        if any(not is_local(m.source) for m in ctx.config.models):
            wanted["model cache"] = (hub_cache(ctx), MIN_MODEL_CACHE_GIB)
        else:
            findings.append(
                Finding(self.slug, Level.OK, "free disk: model cache", "none needed", "every model is a local path")
            )
        wanted["logs"] = (Path(ctx.config.settings.log_dir), MIN_LOGS_GIB)
        for label, (path, minimum) in wanted.items():
            free = shutil.disk_usage(_existing(path)).free / GIB
            if free < minimum:
                findings.append(
                    self.problem(
                        Level.ERROR if free < minimum / 4 else Level.WARNING,
                        f"{label} ({path}): >= {minimum} GiB free",
                        f"{free:.1f} GiB free",
                        "free space on that file system or move it (LOG_DIR / HF_HOME)",
                        title=f"free disk: {label}",
                    )
                )
            else:
                findings.append(
                    Finding(self.slug, Level.OK, f"free disk: {label}", f">= {minimum} GiB", f"{free:.0f} GiB")
                )
        return findings

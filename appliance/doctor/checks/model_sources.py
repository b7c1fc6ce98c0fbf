"""Local model sources: the directory exists with a config.json, no pickle weights unless allowed, and every
file is in the model's manifest (names only: the hashes are compared when the model loads)."""

from __future__ import annotations

from pathlib import Path

from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.lifecycle.integrity import observe_with_manifest
from appliance.lifecycle.manifest import ManifestStore
from appliance.lifecycle.sources import is_local, source_problems


class ModelSources(Check):
    slug = "model-sources"
    title = "local model files"

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and any(is_local(m.source) for m in ctx.config.models)

    def run(self, ctx: DoctorContext) -> list[Finding]:
        assert ctx.config is not None
        manifests = ManifestStore(Path(ctx.config.settings.registry_manifest_dir))
        findings, pinned, unpinned = [], 0, 0
        for model in (m for m in ctx.config.models if is_local(m.source)):
            facts = observe_with_manifest(model.source, manifests)
            for problem in source_problems(facts, allow_pickle_weights=model.allow_pickle_weights):
                findings.append(
                    self.problem(
                        Level.ERROR,
                        problem.expected,
                        problem.found,
                        problem.fix,
                        title=f"model {model.id}: {problem.field}",
                    )
                )
            if facts.manifest_files is None:
                unpinned += 1
            else:
                pinned += 1
        if findings:
            return findings
        found = f"{pinned} with a manifest that lists every file"
        if unpinned:
            found += f", {unpinned} without a manifest yet (written when it first loads)"
        return [self.ok(found=found, expected="local models complete, safetensors, covered by their manifest")]

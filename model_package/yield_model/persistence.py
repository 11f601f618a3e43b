"""Saving and loading a fitted pipeline with its model card.

A pickle runs code when it is loaded, so a model file is unpickled only when its sha256 is the
one a trusted source gives: the caller (an operator's setting), or else the installed package
itself, which records the sha256 of the model it carries (the wheel's RECORD; in a source
checkout, the packaged card). The card beside a model file given by path only describes it:
whoever could write the file could write that card too.
"""

import base64
import hashlib
import importlib.metadata
import io
from pathlib import Path
from typing import Any

import joblib
from pydantic import ValidationError

from yield_model.card import ModelCard
from yield_model.config import (
    MODEL_NAME,
    TRAINED_MODEL_DIR,
    card_file_name,
    model_file_name,
)
from yield_model.errors import ModelLoadError


def save_model(pipeline: Any, card: ModelCard, directory: Path = TRAINED_MODEL_DIR) -> Path:
    """Write the pipeline and its card (with the pipeline's sha256); returns the model path."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / model_file_name(card.version)
    # Other versions' files are removed so that a wheel carries exactly one model.
    for old in (*directory.glob("yield_model_v*.joblib"), *directory.glob("yield_model_v*.json")):
        old.unlink()
    joblib.dump(pipeline, model_path, compress=3)
    card = card.model_copy(update={"model_sha256": file_sha256(model_path)})
    card_path = directory / card_file_name(card.version)
    card_path.write_text(card.model_dump_json(indent=2), encoding="utf-8")
    return model_path


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex: what ``load_pipeline`` expects."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name.removesuffix(".joblib") + ".card.json")


def _recorded_sha256(relative: str, path: Path) -> str | None:
    """The sha256 the installed distribution's RECORD lists for ``path`` (``relative`` to
    site-packages), or None if it lists none (a source checkout or an editable install)."""
    try:
        files = importlib.metadata.distribution(MODEL_NAME).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.as_posix() != relative or file.hash is None or file.hash.mode != "sha256":
            continue
        if Path(str(file.locate())).resolve() == path.resolve():
            padded = file.hash.value + "=" * (-len(file.hash.value) % 4)
            return base64.urlsafe_b64decode(padded).hex()
    return None


def packaged_model_sha256() -> tuple[str, str]:
    """The sha256 of the model file the installed package carries, and where it comes from.

    The wheel's RECORD when the package was installed from one; otherwise the packaged card,
    which training wrote with the model.
    """
    relative = f"yield_model/trained_models/{model_file_name()}"
    recorded = _recorded_sha256(relative, default_model_path())
    if recorded is not None:
        return recorded, f"the RECORD of the installed {MODEL_NAME} wheel"
    card_path = TRAINED_MODEL_DIR / card_file_name()
    try:
        card = ModelCard.model_validate_json(card_path.read_bytes())
    except (OSError, ValidationError):
        card = None
    if card is None or not card.model_sha256:
        raise ModelLoadError(
            f"the installed {MODEL_NAME} records no sha256 for its model ({card_path}); "
            "train it again, or give the sha256 of the model to load"
        )
    return card.model_sha256, f"the card of the installed {MODEL_NAME}"


def load_pipeline(model_path: Path, sha256: str | None = None) -> tuple[Any, ModelCard]:
    """Load a pipeline and the card saved beside it, if the file's sha256 is the trusted one.

    ``sha256`` is the expected hash; without it, the installed package's own model's hash
    (``packaged_model_sha256``). The file is read once, hashed, and unpickled from the bytes
    that were hashed, so it cannot be swapped in between.
    """
    card_path = _card_path(model_path)
    hint = "train one with: python -m yield_model.train --data <csv or s3 uri>"
    if not model_path.is_file():
        raise ModelLoadError(f"no trained model at {model_path}; {hint}")
    if not card_path.is_file():
        raise ModelLoadError(f"no model card at {card_path} beside the model; {hint}")
    if sha256 is not None:
        expected, source = sha256.lower(), "the sha256 given"
    else:
        expected, source = packaged_model_sha256()
    data = model_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelLoadError(
            f"model file {model_path} has sha256 {actual}, not {expected} ({source}): "
            "corrupt, replaced or another model, and not loaded (unpickling runs code); "
            "to serve another model, give its sha256 (MLAPI_MODEL_SHA256 for the API)"
        )
    try:
        card = ModelCard.model_validate_json(card_path.read_bytes())
    except ValidationError as exc:
        raise ModelLoadError(
            f"model card {card_path} is invalid: {exc.errors()[0]['msg']}"
        ) from None
    if card.model_sha256 and card.model_sha256 != actual:
        raise ModelLoadError(f"model card {card_path} describes another model file")
    try:
        pipeline = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a damaged pickle fails in any of a dozen ways; all mean this
        raise ModelLoadError(f"model file {model_path} cannot be loaded: {exc!r}") from None
    if not hasattr(pipeline, "predict"):
        raise ModelLoadError(f"{model_path} holds a {type(pipeline).__name__}, not a pipeline")
    return pipeline, card


def default_model_path() -> Path:
    """The model file the installed package carries."""
    return TRAINED_MODEL_DIR / model_file_name()

"""Saving and loading a fitted pipeline with its model card."""

import hashlib
from pathlib import Path
from typing import Any

import joblib
from pydantic import ValidationError

from yield_model.card import ModelCard
from yield_model.config import TRAINED_MODEL_DIR, card_file_name, model_file_name
from yield_model.errors import ModelLoadError


def save_model(pipeline: Any, card: ModelCard, directory: Path = TRAINED_MODEL_DIR) -> Path:
    """Write the pipeline and its card (with the pipeline's sha256); returns the model path."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / model_file_name(card.version)
    # Other versions' files are removed so that a wheel carries exactly one model.
    for old in (*directory.glob("yield_model_v*.joblib"), *directory.glob("yield_model_v*.json")):
        old.unlink()
    joblib.dump(pipeline, model_path, compress=3)
    card = card.model_copy(update={"model_sha256": _sha256(model_path)})
    card_path = directory / card_file_name(card.version)
    card_path.write_text(card.model_dump_json(indent=2), encoding="utf-8")
    return model_path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_pipeline(model_path: Path) -> tuple[Any, ModelCard]:
    """Load a pipeline and the card saved beside it, checking that they belong together."""
    card_path = model_path.with_name(model_path.name.removesuffix(".joblib") + ".card.json")
    hint = "train one with: python -m yield_model.train --data <csv or s3 uri>"
    if not model_path.is_file():
        raise ModelLoadError(f"no trained model at {model_path}; {hint}")
    if not card_path.is_file():
        raise ModelLoadError(f"no model card at {card_path} beside the model; {hint}")
    try:
        card = ModelCard.model_validate_json(card_path.read_bytes())
    except ValidationError as exc:
        raise ModelLoadError(
            f"model card {card_path} is invalid: {exc.errors()[0]['msg']}"
        ) from None
    if card.model_sha256 and card.model_sha256 != _sha256(model_path):
        raise ModelLoadError(
            f"model file {model_path} does not match its card's sha256: corrupt or replaced"
        )
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # a damaged pickle fails in any of a dozen ways; all mean this
        raise ModelLoadError(f"model file {model_path} cannot be loaded: {exc!r}") from None
    if not hasattr(pipeline, "predict"):
        raise ModelLoadError(f"{model_path} holds a {type(pipeline).__name__}, not a pipeline")
    return pipeline, card


def default_model_path() -> Path:
    """The model file the installed package carries."""
    return TRAINED_MODEL_DIR / model_file_name()

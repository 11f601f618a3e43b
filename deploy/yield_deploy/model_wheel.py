"""The model wheel as the release sees it, read from the wheel file itself.

A release must not trust an installed ``yield_model`` (any checkout has one) to describe the
file it publishes and deploys: the card and the model's sha256 are read with ``zipfile`` from
the very wheel, and the three records of the model file's sha256 (its bytes, the wheel's
RECORD, the card's ``model_sha256``) must agree.
"""

import base64
import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yield_deploy.errors import ModelWheelError

WHEEL_NAME = re.compile(r"^yield_model-(?P<version>[^-]+)-py3-none-any\.whl$")
MODEL_DIR = "yield_model/trained_models"
#: The card's data.origin of a model trained on the plant's data (a file or S3 object).
PLANT_DATA = "file"


@dataclass(frozen=True)
class ModelWheel:
    """What a model wheel says about the model it carries."""

    path: Path
    version: str
    model_sha256: str
    data_origin: str | None
    data_source: str

    @property
    def trained_on_generated_data(self) -> bool:
        """Whether the card does not say the model was trained on the plant's data."""
        return self.data_origin != PLANT_DATA

    def describe_data(self) -> str:
        """The card's data origin and source, as an error message quotes them."""
        origin = self.data_origin or "not recorded"
        return f"data.origin {origin}, data.source {self.data_source!r}"


def is_model_wheel(path: Path) -> bool:
    """Whether a distribution is a wheel of the model package."""
    return WHEEL_NAME.match(path.name) is not None


def read_model_wheel(path: Path) -> ModelWheel:
    """The card and the model file's sha256 of a model wheel, checked against each other."""
    named = WHEEL_NAME.match(path.name)
    if named is None:
        raise ModelWheelError(
            f"{path} is not named like a model wheel (yield_model-V-py3-none-any.whl)"
        )
    version = named["version"]
    model_name = f"{MODEL_DIR}/yield_model_v{version}.joblib"
    card_name = f"{MODEL_DIR}/yield_model_v{version}.card.json"
    try:
        with zipfile.ZipFile(path) as wheel:
            names = set(wheel.namelist())
            missing = [name for name in (model_name, card_name) if name not in names]
            if missing:
                raise ModelWheelError(
                    f"{path.name} carries no trained model of version {version}"
                    f" (no {', '.join(missing)}): build it with scripts/build-model-wheel.sh"
                )
            model_sha256 = hashlib.sha256(wheel.read(model_name)).hexdigest()
            card = _card(wheel.read(card_name), path.name)
            recorded = _recorded_sha256(wheel, version, model_name, path.name)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelWheelError(f"{path} is not a readable wheel: {error}") from None
    if recorded != model_sha256:
        raise ModelWheelError(
            f"{path.name}: its RECORD gives the model file sha256 {recorded}, but the file has"
            f" {model_sha256}: the wheel was altered after it was built"
        )
    if card.get("model_sha256") != model_sha256:
        raise ModelWheelError(
            f"{path.name}: its card gives model_sha256 {card.get('model_sha256')}, but the model"
            f" file has {model_sha256}: the card describes another model"
        )
    if card.get("version") != version:
        raise ModelWheelError(
            f"{path.name}: its card is of version {card.get('version')}, not {version}"
        )
    data = card.get("data")
    if not isinstance(data, dict):
        data = {}
    origin = data.get("origin")
    return ModelWheel(
        path=path,
        version=version,
        model_sha256=model_sha256,
        data_origin=origin if isinstance(origin, str) else None,
        data_source=str(data.get("source", "not recorded")),
    )


def _card(raw: bytes, wheel: str) -> dict[str, Any]:
    try:
        card = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelWheelError(f"{wheel}: its model card is not JSON: {error}") from None
    if not isinstance(card, dict):
        raise ModelWheelError(f"{wheel}: its model card is not a JSON object")
    return card


def _recorded_sha256(wheel: zipfile.ZipFile, version: str, member: str, name: str) -> str:
    record_name = f"yield_model-{version}.dist-info/RECORD"
    try:
        text = wheel.read(record_name).decode("utf-8")
    except KeyError:
        raise ModelWheelError(f"{name} has no {record_name}") from None
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == member:
            algorithm, _, value = (row[1] if len(row) > 1 else "").partition("=")
            if algorithm != "sha256":
                break
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    raise ModelWheelError(f"{name}: its RECORD gives no sha256 of {member}")

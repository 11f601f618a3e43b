"""A model file is unpickled only when its sha256 is a trusted one, never the card's say-so."""

import json
import shutil
from pathlib import Path

import joblib
import pytest

from yield_model.config import card_file_name, model_file_name
from yield_model.errors import ModelLoadError
from yield_model.persistence import (
    default_model_path,
    file_sha256,
    load_pipeline,
    packaged_model_sha256,
)
from yield_model.predict import TrainedModel, load_model


class _RunsCode:
    """A pickle that, loaded, creates a file: what a hostile model file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


@pytest.fixture
def hostile_model(trained_model: TrainedModel, tmp_path: Path) -> tuple[Path, Path]:
    """A pickle that runs code, with a card beside it that vouches for its sha256; and the
    file its code would create."""
    marker = tmp_path / "code-ran"
    folder = tmp_path / "hostile"
    folder.mkdir()
    path = folder / model_file_name()
    joblib.dump(_RunsCode(marker), path)
    card = trained_model.card.model_copy(update={"model_sha256": file_sha256(path)})
    (folder / card_file_name()).write_text(card.model_dump_json(), encoding="utf-8")
    return path, marker


def test_a_card_beside_the_model_cannot_vouch_for_it(hostile_model: tuple[Path, Path]) -> None:
    path, marker = hostile_model

    with pytest.raises(ModelLoadError) as caught:
        load_model(path)

    assert not marker.exists()
    expected, source = packaged_model_sha256()
    assert f"has sha256 {file_sha256(path)}, not {expected} ({source})" in str(caught.value)
    assert "not loaded (unpickling runs code)" in str(caught.value)
    assert "MLAPI_MODEL_SHA256" in str(caught.value)


def test_a_sha256_other_than_the_file_s_refuses_it_before_unpickling(
    hostile_model: tuple[Path, Path],
) -> None:
    path, marker = hostile_model

    with pytest.raises(ModelLoadError, match="the sha256 given"):
        load_pipeline(path, sha256="0" * 64)

    assert not marker.exists()


def test_the_sha256_given_is_what_lets_a_file_be_unpickled(
    hostile_model: tuple[Path, Path],
) -> None:
    # The operator vouches for this file: it is loaded (and found not to be a pipeline).
    path, marker = hostile_model

    with pytest.raises(ModelLoadError, match="holds a NoneType, not a pipeline"):
        load_pipeline(path, sha256=file_sha256(path).upper())

    assert marker.exists()


def test_a_copy_of_the_packaged_model_loads_by_path_without_a_sha256(tmp_path: Path) -> None:
    # tox -e model trains the packaged model before the tests run.
    source = default_model_path()
    shutil.copy(source, tmp_path / source.name)
    shutil.copy(source.with_name(card_file_name()), tmp_path / card_file_name())

    model = load_model(tmp_path / source.name)

    assert model.card == load_model().card
    assert packaged_model_sha256()[0] == file_sha256(source)


def test_a_retrained_model_beside_the_packaged_one_needs_its_sha256(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    # Given another model, saved with a truthful card
    folder = tmp_path / "other"
    folder.mkdir()
    path = folder / model_file_name()
    joblib.dump(trained_model.pipeline, path)
    card = trained_model.card.model_copy(update={"model_sha256": file_sha256(path)})
    (folder / card_file_name()).write_text(json.dumps(card.model_dump(mode="json")))
    if file_sha256(path) == packaged_model_sha256()[0]:
        pytest.skip("this model happens to be byte for byte the packaged one")
    # Then it is refused by path alone, and served once its sha256 is given
    with pytest.raises(ModelLoadError, match="not loaded"):
        load_model(path)
    assert load_model(path, sha256=file_sha256(path)).card == card

"""Prediction: validated records in, predictions and warnings out; loading the model."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from yield_model import __version__
from yield_model.columns import FEATURE_COLUMNS, ID_COLUMN
from yield_model.config import card_file_name, model_file_name
from yield_model.errors import InvalidInputError, ModelLoadError
from yield_model.persistence import file_sha256, save_model
from yield_model.predict import TrainedModel, load_model, make_prediction, records_to_frame
from yield_model.schemas import EXAMPLE_RECORD, Record, validate_records


def _records(path: Path) -> list[dict[str, Any]]:
    frame = pd.read_csv(path, dtype=str, encoding="gb18030", keep_default_na=False)
    return [
        {k: (v if v != "" else None) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def test_predictions_equal_the_pipeline_on_the_same_rows(
    trained_model: TrainedModel, test_csv: tuple[Path, Path]
) -> None:
    records = _records(test_csv[0])
    result = trained_model.predict(records)
    assert result.model_version == __version__
    assert len(result.predictions) == len(result.warnings) == len(records)
    frame = records_to_frame(validate_records(records))
    expected = trained_model.pipeline.predict(frame)
    # The split path (parse with report, then the rest) must be the pipeline exactly.
    assert np.array_equal(np.asarray(result.predictions), expected)


def test_warnings_and_missing_counts_per_record(trained_model: TrainedModel) -> None:
    clean = dict(EXAMPLE_RECORD)
    quirky = {**EXAMPLE_RECORD, "A20": "6:00-6:30分", "B4": "nonsense", "A25": "1900/3/10 0:00"}
    result = trained_model.predict([clean, quirky])
    assert result.warnings[0] == []
    assert result.warnings[1] == [
        "A20: read '6:00-6:30分' as 6:00-6:30",
        "A25: read '1900/3/10 0:00' as 70 (an Excel date artefact)",
        "B4: could not parse 'nonsense', treated as missing",
    ]
    assert result.unparseable["B4"] == 1
    assert sum(result.unparseable.values()) == 1
    # A2, A7, A8 and B11 are null in the example, in both records.
    assert {k: v for k, v in result.absent.items() if v} == {"A2": 2, "A7": 2, "A8": 2, "B11": 2}


def test_records_accept_published_id_name_nan_and_numeric_strings(
    trained_model: TrainedModel,
) -> None:
    record = {**EXAMPLE_RECORD, "A6": "38", "A7": float("nan"), "A8": float("nan")}
    record[ID_COLUMN] = record.pop("sample_id")
    validated = validate_records([record])[0]
    assert validated.sample_id == "sample_1528"
    assert validated.A6 == "38"  # read by the parser, as every cell is
    base = trained_model.predict([EXAMPLE_RECORD])
    result = trained_model.predict([record])
    assert result.predictions == base.predictions
    assert result.warnings == base.warnings == [[]]
    # Record instances pass through without a second validation.
    assert trained_model.predict([Record.model_validate(EXAMPLE_RECORD)]).predictions == (
        base.predictions
    )


def test_values_of_the_wrong_type_raise_every_problem_with_index_and_field(
    trained_model: TrainedModel,
) -> None:
    bad: list[dict[str, Any]] = [
        dict(EXAMPLE_RECORD),
        {**EXAMPLE_RECORD, "A6": [38], "A5": True, "colour": "red"},
        {**EXAMPLE_RECORD, "B14": True, "sample_id": 1.5, "A1": "x" * 101},
        {**EXAMPLE_RECORD, "sample_id": "s" * 101, "A5": "1" * 101, "B14": 10**400},
    ]
    with pytest.raises(InvalidInputError) as caught:
        trained_model.predict(bad)
    found = {(p.index, p.field): p.message for p in caught.value.problems}
    assert found == {
        (1, "A6"): "expected a number, a numeric string or null, got an array",
        (1, "A5"): "expected a time string such as '13:30:00' or '21:00-21:30', or null, "
        "got a boolean",
        (1, "colour"): "unknown field",
        (2, "B14"): "expected a number, a numeric string or null, got a boolean",
        (2, "sample_id"): "expected a string or an integer, got a number",
        (2, "A1"): "too long: at most 100 characters",
        (3, "sample_id"): "too long: at most 100 characters",
        (3, "A5"): "too long: at most 100 characters",
        (3, "B14"): "too large: an integer beyond any floating-point number",
    }
    assert "9 invalid input value(s)" in str(caught.value)


def test_values_that_cannot_be_read_are_missing_with_a_warning(
    trained_model: TrainedModel,
) -> None:
    # What a value means is the parser's to say: the rest of the batch is still predicted.
    record = {**EXAMPLE_RECORD, "A6": "hot", "A5": 13.5, "A21": float("inf"), "A1": 1e39}
    result = trained_model.predict([record, EXAMPLE_RECORD])
    assert result.warnings[0] == [
        "A1: could not parse 1e+39 (too large: beyond ±3.4e38, the float32 range the model "
        "computes in), treated as missing",
        "A5: could not parse 13.5 (a number in a time column is read as HMM digits, 700 for "
        "7:00), treated as missing",
        "A6: could not parse 'hot', treated as missing",
        "A21: could not parse inf (not a finite number), treated as missing",
    ]
    assert result.warnings[1] == []
    assert {k: v for k, v in result.unparseable.items() if v} == {
        "A1": 1, "A5": 1, "A6": 1, "A21": 1
    }  # fmt: skip


def test_empty_input_is_an_error(trained_model: TrainedModel) -> None:
    with pytest.raises(InvalidInputError, match="at least one record"):
        trained_model.predict([])


def test_every_field_is_optional_and_all_missing_still_predicts(
    trained_model: TrainedModel,
) -> None:
    result = trained_model.predict([{}])
    assert math.isfinite(result.predictions[0])
    assert sum(result.absent.values()) == len(FEATURE_COLUMNS)


def test_make_prediction_uses_the_packaged_model() -> None:
    # tox -e model trains the packaged model before the tests run.
    result = make_prediction([EXAMPLE_RECORD])
    assert result.model_version == __version__
    assert 0.6 < result.predictions[0] < 1.05


def _copy_model(trained_model: TrainedModel, folder: Path) -> Path:
    return save_model(trained_model.pipeline, trained_model.card, folder)


def test_missing_model_files_fail_with_a_clear_message(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match=r"no trained model at .* train one with"):
        load_model(tmp_path / model_file_name())
    path = _copy_model(trained_model, tmp_path)
    (tmp_path / card_file_name()).unlink()
    with pytest.raises(ModelLoadError, match="no model card at"):
        load_model(path)


def test_corrupt_model_files_fail_with_a_clear_message(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    path = _copy_model(trained_model, tmp_path)
    trusted = file_sha256(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=f"has sha256 [0-9a-f]{{64}}, not {trusted} "):
        load_model(path, sha256=trusted)
    card_path = tmp_path / card_file_name()
    with pytest.raises(ModelLoadError, match="describes another model file"):
        load_model(path, sha256=file_sha256(path))
    card = json.loads(card_path.read_text())
    card["model_sha256"] = None
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        load_model(path, sha256=file_sha256(path))
    card_path.write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"model card .* is invalid"):
        load_model(path, sha256=file_sha256(path))


def test_a_frame_read_the_ordinary_way_predicts_every_row(
    trained_model: TrainedModel, test_csv: tuple[Path, Path]
) -> None:
    # How a user reads the published test file: pandas' defaults, numpy scalars, NaN.
    frame = pd.read_csv(test_csv[0], encoding="gb18030")
    by_frame = trained_model.predict(frame)
    by_rows = trained_model.predict([row.to_dict() for _, row in frame.iterrows()])
    by_text = trained_model.predict(_records(test_csv[0]))
    assert len(by_frame.predictions) == len(frame)
    assert by_frame.predictions == by_rows.predictions == by_text.predictions


def test_rows_of_the_training_file_are_accepted_and_their_yield_ignored(
    trained_model: TrainedModel, train_csv: Path
) -> None:
    rows = _records(train_csv)[:20]
    assert all("收率" in row for row in rows)
    without = [{k: v for k, v in row.items() if k != "收率"} for row in rows]
    assert trained_model.predict(rows).predictions == trained_model.predict(without).predictions
    assert validate_records(rows)[0].observed_yield == rows[0]["收率"]


def test_magnitudes_beyond_float32_in_a_training_frame_become_missing(
    trained_model: TrainedModel,
) -> None:
    # The schema refuses them; a frame given straight to the parser (training) must not crash.
    frame = records_to_frame(validate_records([EXAMPLE_RECORD, EXAMPLE_RECORD]))
    frame.loc[1, "A1"] = 1e39
    frame.loc[1, "A3"] = "-1e300"
    parsed, report = trained_model.pipeline[0].transform_with_report(frame)
    assert report.unparseable["A1"] == report.unparseable["A3"] == 1
    assert report.warnings[1][0].startswith("A1: could not parse 1e+39 (too large")
    assert np.isfinite(
        trained_model.pipeline[1:].predict(
            pd.DataFrame(parsed, columns=trained_model.pipeline[0].get_feature_names_out())
        )
    ).all()

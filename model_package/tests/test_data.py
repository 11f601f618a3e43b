"""Loading data files: local and S3, both encodings, and every way a file can be wrong."""

import hashlib
from pathlib import Path

import boto3
import pandas as pd
import pytest

from yield_model.columns import ALL_COLUMNS, ID_COLUMN, TARGET_COLUMN
from yield_model.data import load_answers, load_dataset
from yield_model.datasets import QUIRKS
from yield_model.errors import DataError, DataNotFoundError


def _rewrite(src: Path, dst: Path, *, encoding: str = "gb18030", edit=None) -> Path:  # type: ignore[no-untyped-def]
    frame = pd.read_csv(src, dtype=str, encoding="gb18030", keep_default_na=False)
    if edit is not None:
        frame = edit(frame)
    frame.to_csv(dst, index=False, encoding=encoding)
    return dst


def test_gb18030_file_loads_with_raw_text_cells(train_csv: Path) -> None:
    dataset = load_dataset(train_csv)
    assert dataset.encoding == "gb18030"
    assert list(dataset.frame.columns) == list(ALL_COLUMNS)
    assert len(dataset.frame) == 1396
    assert dataset.sha256 == hashlib.sha256(train_csv.read_bytes()).hexdigest()
    assert dataset.frame[TARGET_COLUMN].dtype == float
    # Quirks reach the transformers untouched: loading never "cleans" a cell.
    for column, raw in QUIRKS:
        assert (dataset.frame[column] == raw).any(), (column, raw)


def test_utf8_copy_loads_the_same_rows(train_csv: Path, tmp_path: Path) -> None:
    utf8 = _rewrite(train_csv, tmp_path / "utf8.csv", encoding="utf-8")
    with pytest.raises(UnicodeDecodeError):
        train_csv.read_bytes().decode("utf-8")
    a, b = load_dataset(train_csv), load_dataset(utf8)
    assert b.encoding == "utf-8-sig"
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.sha256 != b.sha256


def test_test_file_without_target_loads_when_target_not_required(
    test_csv: tuple[Path, Path],
) -> None:
    data, answers = test_csv
    dataset = load_dataset(data, require_target=False)
    assert TARGET_COLUMN not in dataset.frame.columns
    truth = load_answers(answers)
    assert list(truth.index) == list(dataset.frame[ID_COLUMN])
    with pytest.raises(DataError, match="missing column"):
        load_dataset(data)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", DataError, "is empty"),
        (b"  \n\n", DataError, "is empty"),
        (",".join(ALL_COLUMNS).encode("gb18030") + b"\n", DataError, "no rows"),
        (b"\xff\xfe\x00\x00\x81", DataError, "neither UTF-8 nor GB18030"),
    ],
)
def test_unusable_files_raise_clear_errors(
    tmp_path: Path, content: bytes, error: type[Exception], message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        load_dataset(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no data file at"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        load_dataset(tmp_path)


def test_missing_and_unknown_columns_are_named(train_csv: Path, tmp_path: Path) -> None:
    path = _rewrite(
        train_csv,
        tmp_path / "cols.csv",
        edit=lambda f: f.drop(columns=["A7", "B3"]).assign(extra="x"),
    )
    with pytest.raises(DataError, match=r"missing column\(s\) A7, B3; unknown column\(s\) extra"):
        load_dataset(path)


def test_non_numeric_target_names_the_rows(train_csv: Path, tmp_path: Path) -> None:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, TARGET_COLUMN] = "high"
        return frame

    path = _rewrite(train_csv, tmp_path / "target.csv", edit=spoil)
    sample = pd.read_csv(path, dtype=str, encoding="gb18030")[ID_COLUMN][3]
    with pytest.raises(DataError, match=rf"1 row\(s\) are not: {sample} \('high'\)"):
        load_dataset(path)


@pytest.fixture
def bucket(s3_endpoint: str, train_csv: Path) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    name = "jinnan-data"
    if name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.upload_file(str(train_csv), name, "round1/train.csv")
    return name


def test_s3_object_loads_like_the_local_file(
    s3_endpoint: str, bucket: str, train_csv: Path
) -> None:
    remote = load_dataset(f"s3://{bucket}/round1/train.csv", endpoint_url=s3_endpoint)
    local = load_dataset(train_csv)
    pd.testing.assert_frame_equal(remote.frame, local.frame)
    assert remote.sha256 == local.sha256
    assert remote.source == f"s3://{bucket}/round1/train.csv"


def test_s3_endpoint_from_the_standard_environment(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    assert len(load_dataset(f"s3://{bucket}/round1/train.csv").frame) == 1396


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("s3://jinnan-data/round1/absent.csv", DataNotFoundError, "NoSuchKey"),
        ("s3://no-such-bucket-here/train.csv", DataNotFoundError, "NoSuchBucket"),
        ("s3://jinnan-data", DataError, "not of the form s3://bucket/key"),
    ],
)
def test_s3_errors(
    s3_endpoint: str, bucket: str, uri: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        load_dataset(uri, endpoint_url=s3_endpoint)

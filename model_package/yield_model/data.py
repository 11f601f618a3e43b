"""Reading the JinNan data files from a local path or S3, exactly as published."""

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from yield_model.columns import FEATURE_COLUMNS, ID_COLUMN, TARGET_COLUMN
from yield_model.errors import DataError, DataNotFoundError

# The published files are GB18030; copies re-saved by users are often UTF-8 (with a BOM
# when Excel saved them). UTF-8 is tried first because GB18030 decodes almost any bytes.
ENCODINGS = ("utf-8-sig", "gb18030")

#: Where training rows came from: drawn by ``yield_model.datasets`` in the training run
#: itself, or read from a file or S3 object (the plant's data, as far as training can tell).
Origin = Literal["generated", "file"]


@dataclass(frozen=True)
class Dataset:
    """A data file's rows as raw text cells, with where it came from and its sha256."""

    frame: pd.DataFrame
    source: str
    sha256: str
    encoding: str
    origin: Origin = "file"


def read_bytes(uri: str | Path, *, endpoint_url: str | None = None) -> bytes:
    """Read a local file or an ``s3://bucket/key`` object."""
    text = str(uri)
    if text.startswith("s3://"):
        return _read_s3(text, endpoint_url=endpoint_url)
    path = Path(text)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"no data file at {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a data file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None


def _read_s3(uri: str, *, endpoint_url: str | None) -> bytes:
    # boto3 is imported here so that importing the package stays light.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise DataError(f"{uri} is not of the form s3://bucket/key")
    client = boto3.client("s3", endpoint_url=endpoint_url)
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}:
            raise DataNotFoundError(f"no S3 object at {uri} ({code})") from None
        raise DataError(f"cannot read {uri}: {code or exc}") from None
    except BotoCoreError as exc:
        raise DataError(f"cannot read {uri}: {exc}") from None
    return body


def decode(raw: bytes, source: str) -> tuple[str, str]:
    """Decode a file's bytes as UTF-8 or GB18030, returning the text and the encoding used."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(f"{source} is neither UTF-8 nor GB18030 text")


def load_dataset(
    uri: str | Path, *, endpoint_url: str | None = None, require_target: bool = True
) -> Dataset:
    """Load a training (``require_target``) or test file with every cell kept as raw text.

    Raises DataNotFoundError for a missing file or object and DataError for an empty file,
    missing or unknown columns, or a target that is missing or not a number.
    """
    source = str(uri)
    return parse_dataset(read_bytes(uri, endpoint_url=endpoint_url), source, require_target)


def parse_dataset(
    raw: bytes, source: str, require_target: bool = True, origin: Origin = "file"
) -> Dataset:
    """A data file's bytes as a Dataset; raises DataError as ``load_dataset`` says."""
    text, encoding = decode(raw, source)
    if not text.strip():
        raise DataError(f"{source} is empty")
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
        )
    except pd.errors.ParserError as exc:
        raise DataError(f"{source} is not a readable CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _check_columns(frame, source, require_target=require_target)
    if TARGET_COLUMN in frame.columns:
        frame[TARGET_COLUMN] = _numeric_target(frame[TARGET_COLUMN], frame, source)
    if frame.empty:
        raise DataError(f"{source} has a header but no rows")
    return Dataset(frame, source, hashlib.sha256(raw).hexdigest(), encoding, origin)


def _check_columns(frame: pd.DataFrame, source: str, *, require_target: bool) -> None:
    expected = {ID_COLUMN, *FEATURE_COLUMNS, TARGET_COLUMN}
    required = [*FEATURE_COLUMNS, *([TARGET_COLUMN] if require_target else [])]
    missing = [c for c in required if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in expected]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if frame.columns.duplicated().any():
        problems.append("duplicated column names")
    if problems:
        raise DataError(f"{source}: {'; '.join(problems)}")


def _numeric_target(target: pd.Series, frame: pd.DataFrame, source: str) -> pd.Series:
    values = pd.to_numeric(target, errors="coerce")
    bad = values.isna()
    if bad.any():
        ids = frame[ID_COLUMN] if ID_COLUMN in frame.columns else pd.Series(frame.index + 2)
        shown = ", ".join(
            f"{sample} ({raw!r})"
            for sample, raw in zip(ids[bad].head(5), target[bad].head(5), strict=True)
        )
        raise DataError(
            f"{source}: {TARGET_COLUMN} must be a number in every row; "
            f"{int(bad.sum())} row(s) are not: {shown}"
        )
    return values.astype(float)


def load_answers(uri: str | Path, *, endpoint_url: str | None = None) -> pd.Series:
    """Load a header-less ``sample id, yield`` answer file as a Series indexed by sample id."""
    source = str(uri)
    text, _ = decode(read_bytes(uri, endpoint_url=endpoint_url), source)
    if not text.strip():
        raise DataError(f"{source} is empty")
    frame = pd.read_csv(io.StringIO(text), header=None, dtype=str)
    if frame.shape[1] != 2:
        raise DataError(f"{source}: expected 2 columns (sample id, yield), found {frame.shape[1]}")
    answers = pd.to_numeric(frame[1], errors="coerce")
    if answers.isna().any():
        raise DataError(f"{source}: yields must be numbers")
    return pd.Series(answers.to_numpy(float), index=frame[0].str.strip(), name=TARGET_COLUMN)

"""The HTTP bodies of the API; records themselves are the model package's ``Record``."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from yield_model.schemas import EXAMPLE_RECORD, Record


class MultipleYieldInputs(BaseModel):
    """The body of a prediction request: one or more batches' process logs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": [EXAMPLE_RECORD]}]}
    )

    inputs: list[Record] = Field(
        min_length=1,
        description="The records to predict; at most MLAPI_MAX_RECORDS (10,000 by default).",
    )


class YieldPrediction(BaseModel):
    """The predicted yield of one record."""

    prediction_id: UUID = Field(description="Unique id of this prediction, for tracing.")
    sample_id: str | None = Field(description="The record's sample_id, if it had one.")
    predicted_yield: float = Field(description="Predicted yield (收率), a ratio near 0.6-1.0.")
    warnings: list[str] = Field(
        description="Values that were repaired or, unreadable, treated as missing."
    )


class PredictionResults(BaseModel):
    """The answer to a prediction request, in the order of the inputs."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    predictions: list[YieldPrediction]


class Health(BaseModel):
    """The service is up and serving this model."""

    model_config = ConfigDict(protected_namespaces=())

    status: Literal["ok"]
    api_version: str
    model_name: str
    model_version: str


class ErrorItem(BaseModel):
    """One thing wrong with a request: where (record index, field) and why."""

    index: int | None = Field(description="Index of the record in inputs, if it is about one.")
    field: str | None = Field(description="The field concerned, if any.")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong: a short code to branch on, a sentence, and the particulars."""

    code: str = Field(examples=["invalid_input"])
    message: str
    errors: list[ErrorItem]


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: ErrorDetail

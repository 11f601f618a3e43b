"""The HTTP bodies of the API; a prediction request is the model package's ``PredictionRequest``."""

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

_UUID_TEXT: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _uuid_text(value: object) -> object:
    """Only the 8-4-4-4-12 form the schema's format ``uuid`` names: pydantic alone also reads
    32 bare hex digits, braces and ``urn:uuid:``, which the OpenAPI document does not allow."""
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value) is None:
        raise PydanticCustomError(
            "uuid_parsing",
            "expected a UUID written as 8-4-4-4-12 hex digits, "
            "e.g. 6f1c1f3e-2a8b-4c55-9d0e-3b0f7a4e2c11",
        )
    return value


#: A prediction id as a client sends it back, in the form the answers give it.
PredictionId = Annotated[UUID, BeforeValidator(_uuid_text)]


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


#: The measured yield, as the data has it: a ratio, 0.92 for 92 %; above 1.5 is a unit mistake.
MAX_ACTUAL_YIELD = 1.5
ActualYield = Annotated[
    float,
    Field(
        strict=True,
        ge=0,
        le=MAX_ACTUAL_YIELD,
        allow_inf_nan=False,
        description="The measured yield (收率) of the batch, a ratio from 0 to 1.5.",
        examples=[0.9213],
    ),
]


class FeedbackItem(BaseModel):
    """The measured yield of a batch that was predicted earlier."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: PredictionId = Field(description="The prediction_id the prediction answer gave.")
    actual_yield: ActualYield


class FeedbackRequest(BaseModel):
    """The body of a feedback request: measured yields of earlier predictions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "feedback": [
                        {
                            "prediction_id": "6f1c1f3e-2a8b-4c55-9d0e-3b0f7a4e2c11",
                            "actual_yield": 0.9213,
                        }
                    ]
                }
            ]
        },
    )

    # fail_fast: the first invalid item stops validation (see yield_model's PredictionRequest).
    feedback: list[FeedbackItem] = Field(
        min_length=1,
        fail_fast=True,
        description="At most MLAPI_MAX_RECORDS items; each prediction takes one value only.",
    )


class FeedbackResult(BaseModel):
    """What became of one feedback item."""

    prediction_id: UUID
    status: Literal["recorded", "unknown", "duplicate"] = Field(
        description="recorded; unknown: no such prediction in the log (never made, or older "
        "than its retention); duplicate: the prediction already had a value, which stands."
    )
    actual_yield: float | None = Field(
        description="The value on record: this one if recorded, the earlier one if duplicate."
    )


class FeedbackResults(BaseModel):
    """The answer to a feedback request, in the order of the items."""

    results: list[FeedbackResult]


class RecordedFeedback(BaseModel):
    """The measured yield received for a prediction."""

    actual_yield: float
    received_at: datetime
    absolute_error: float = Field(description="|predicted_yield - actual_yield|")


class LoggedPrediction(BaseModel):
    """A prediction as the log holds it: inputs as sent, output, and feedback once received."""

    model_config = ConfigDict(protected_namespaces=())

    prediction_id: UUID
    created_at: datetime
    model_version: str
    sample_id: str | None
    inputs: dict[str, Any] = Field(
        description="The record's feature values as validated, blanks left out."
    )
    predicted_yield: float
    warnings: list[str]
    feedback: RecordedFeedback | None


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

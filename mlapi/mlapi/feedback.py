"""The feedback request body: JSON bytes to (prediction id, measured yield) pairs, or why not."""

from uuid import UUID

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mlapi.errors import MAX_LISTED_ERRORS, ApiError
from mlapi.schemas import ErrorItem, FeedbackItem, FeedbackRequest
from yield_model.schemas import structural_tokens

#: The keys of an item: each field once.
ITEM_KEYS = len(FeedbackItem.model_fields)


def max_feedback_tokens(max_items: int) -> int:
    """The structural tokens of ``{"feedback": [...]}`` with ``max_items`` items (as
    ``yield_model.schemas.max_request_tokens`` counts them)."""
    return 3 + max_items * (2 * ITEM_KEYS + 1)


def _item(error: ErrorDetails) -> ErrorItem:
    loc = error["loc"]
    # ("feedback", 3, "actual_yield"): item 3 of the list, its field actual_yield
    index = loc[1] if len(loc) > 1 and loc[0] == "feedback" and isinstance(loc[1], int) else None
    field = ".".join(str(part) for part in (loc[2:] if index is not None else loc)) or None
    message = "unknown field" if error["type"] == "extra_forbidden" else str(error["msg"])
    return ErrorItem(index=index, field=field, message=message)


def parse_feedback(body: bytes | bytearray, max_items: int) -> list[tuple[UUID, float]]:
    """The items of a ``{"feedback": [{"prediction_id", "actual_yield"}, ...]}`` body.

    A body with more structure than ``max_items`` items can have is refused before it is
    parsed, as a prediction request is; validation stops at the first invalid item.
    """
    too_many = f"at most {max_items} feedback items are accepted"
    limit = max_feedback_tokens(max_items)
    if structural_tokens(body, limit) > limit:
        message = f"the body holds more JSON values than {max_items} feedback items can; {too_many}"
        raise ApiError(
            413,
            "too_many_records",
            message,
            [ErrorItem(index=None, field="feedback", message=message)],
        )
    try:
        request = FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(error["type"] == "json_invalid" for error in errors):
            message = f"the request body is not valid JSON: {errors[0]['msg']}"
            raise ApiError(400, "malformed_json", message) from None
        items = [_item(error) for error in errors]
        message = f"{len(items)} invalid feedback value(s)"
        if len(items) > MAX_LISTED_ERRORS:
            message += f"; the first {MAX_LISTED_ERRORS} are listed"
        raise ApiError(422, "invalid_input", message, items[:MAX_LISTED_ERRORS]) from None
    if len(request.feedback) > max_items:
        message = f"{len(request.feedback)} feedback items sent; {too_many}"
        raise ApiError(
            413,
            "too_many_records",
            message,
            [ErrorItem(index=None, field="feedback", message=message)],
        )
    return [(item.prediction_id, item.actual_yield) for item in request.feedback]

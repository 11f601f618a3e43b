"""The one exception hierarchy of the model package."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (record index, field) and why."""

    message: str
    index: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ".".join(str(p) for p in (self.index, self.field) if p is not None)
        return f"{where}: {self.message}" if where else self.message


class YieldModelError(Exception):
    """Base class of every error the package raises on purpose."""


class DataError(YieldModelError):
    """A data file cannot be used: missing, empty, wrong columns or bad target."""


class DataNotFoundError(DataError):
    """The file or S3 object named does not exist."""


class InvalidInputError(YieldModelError):
    """Prediction input failed validation; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} invalid input value(s): {shown}{more}")


class MalformedRequestError(YieldModelError):
    """A request body is not JSON at all; the message says where reading it failed."""


class TooManyRecordsError(YieldModelError):
    """A request holds more records than the caller accepts at once."""

    def __init__(self, count: int | None, limit: int, message: str | None = None) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            message or f"{count} records sent; at most {limit} are accepted per request"
        )


class ModelLoadError(YieldModelError):
    """The trained model or its card is missing, corrupt or of another version."""

"""Logging configuration: one line per event on stdout, as JSON or as text."""

from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from mlapi.settings import Settings

_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
_JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server's master and workers alike."""
    if settings.log_format == "json":
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": _JSON_FIELDS,
            "rename_fields": {"levelname": "level", "name": "logger", "process": "pid"},
            "timestamp": "time",
            # uvicorn adds an ANSI-coloured copy of some messages; one copy is enough
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }
    else:
        formatter = {"format": _TEXT_FORMAT}
    level = settings.log_level.upper()
    # gunicorn.error keeps its own handler because uvicorn's worker copies that logger's
    # handlers onto uvicorn.error; access logs are off: the app logs each request itself.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }

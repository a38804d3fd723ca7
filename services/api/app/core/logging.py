"""Logging for the API, the migrator and the CLIs: human-readable lines by default, JSON with
LOG_FORMAT=json. Uvicorn's own loggers go through the same handler; its access log is replaced by
`app.core.requests`, which logs one line per request without query strings or headers."""

import json
import logging
import logging.config
import time
from typing import Any

from app.core.config import Settings

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class DropStartupTraceback(logging.Filter):
    """The lifespan already logged why startup failed in one line; uvicorn would repeat it as a
    traceback. Keep the one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Traceback") and "DatabaseUnreachable" in message)


def logging_config(settings: Settings) -> dict[str, Any]:
    formatter = (
        {"()": JsonFormatter}
        if settings.LOG_FORMAT == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "datefmt": "%Y-%m-%dT%H:%M:%S"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"startup": {"()": DropStartupTraceback}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["startup"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "pyauth": {"level": settings.LOG_LEVEL},
            "uvicorn": {"level": settings.LOG_LEVEL},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            "alembic": {"level": "WARNING"},
            "alembic.runtime.migration": {"level": "INFO"},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))

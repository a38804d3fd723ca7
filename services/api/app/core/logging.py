"""Logging for the API, the migrator and the CLIs: human-readable lines by default, JSON with
LOG_FORMAT=json. Uvicorn's own loggers go through the same handler; its access log is replaced by
`app.core.requests`, which logs one line per request without query strings or headers.

Both formats escape control characters in every logged value (ASVS 16.4.1), whichever logger wrote it:
a percent-decoded path, an email or an exception message cannot start a forged line (`%0a`) or send
terminal escapes (`%1b`). A traceback's lines each start with `  | `, so none of them reads as a record.

Every record written while a request is served carries that request's id (`rid=…` at the end of a text
line, `request_id` in JSON), whichever logger wrote it: the request edge (`app.core.edge`) sets it in a
contextvar for the request's task, and the formatters read it, so a service's warning can be matched with
its access line and the `X-Request-ID` the client saw.

The API server writes pyauth's own records in batches (`BatchingStreamHandler`): one write per request
line cost about 0.15 ms of CPU on these machines, more than answering the JWKS does. A batch goes out at
most FLUSH_INTERVAL_SECONDS after its first line, at once for a warning or worse, and when the lifespan
ends; uvicorn's own lines and the CLIs' are written as they come.
"""

import copy
import json
import logging
import logging.config
import math
import threading
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _encode_json_string
from typing import Any, ClassVar, TextIO

from app.core.config import Settings

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Starts each line of a traceback or stack in text logs: a record's own line starts with its time.
CONTINUATION = "  | "
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# A line's time to the second, as both formats write it (the text format in local time, JSON in UTC).
ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"
# The request log (`app.core.requests`): one line per request, made by `log_request`.
REQUEST_LOGGER = "pyauth.request"

# The id of the request being served, set by the request edge (`app.core.edge`) for the request's task (and
# the tasks and threads it starts, which copy the context); None outside a request (startup, workers, CLIs).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def _request_id(record: logging.LogRecord) -> str | None:
    """The id of the request `record` was written for: one given as `extra` wins over the contextvar, so a
    record formatted elsewhere than where it was made (a queue handler) keeps its own."""
    given = record.__dict__.get("request_id")
    return str(given) if given is not None else request_id.get()


def escape_controls(text: str) -> str:
    r"""`text` with every character that is not printable written as a Python escape (`\x0a`, `\x1b`,
    `\u2028`): C0 and C1 controls, DEL, line and paragraph separators, bidi and other format characters.
    Backslashes are kept as they are: a logged `\x0a` may have been typed, but it is never a line break."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_lines(text: str) -> list[str]:
    """A multi-line text (a traceback) as lines, each escaped."""
    return [escape_controls(line) for line in text.rstrip("\n").split("\n")]


def _safe(value: Any) -> Any:
    """A JSON-ready copy of an `extra` value with every string in it escaped."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {escape_controls(str(key)): _safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(item) for item in value]
    return escape_controls(str(value))


def _json_string(text: str) -> str:
    """`text` escaped as every logged value is, then as `json.dumps` writes a string."""
    return _encode_json_string(escape_controls(text))


def _json_number(number: float) -> str:
    """A float as `json.dumps` writes it: `repr` when finite, its own words for NaN and the infinities."""
    return repr(number) if math.isfinite(number) else json.dumps(number)


def _details(formatter: logging.Formatter, record: logging.LogRecord) -> list[str]:
    """The record's traceback and stack, if any, as escaped lines."""
    lines: list[str] = []
    if record.exc_info:
        lines += _escape_lines(formatter.formatException(record.exc_info))
    elif record.exc_text:
        lines += _escape_lines(record.exc_text)
    if record.stack_info:
        lines += _escape_lines(formatter.formatStack(record.stack_info))
    return lines


class _SecondsCache:
    """`time.strftime(datefmt)` of a record's time, made once per second: every request's line is
    stamped, and formatting the time anew for each was a third of a line's CPU."""

    def __init__(self) -> None:
        self._second, self._text = -1, ""

    def stamp(self, created: float, datefmt: str, converter: Any) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(datefmt, converter(created))
        return self._text


class TextFormatter(logging.Formatter):
    """`logging.Formatter`, with the record's line escaped and its traceback lines marked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seconds = _SecondsCache()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is None:  # the default format has milliseconds: nothing to reuse
            return super().formatTime(record, datefmt)
        return self._seconds.stamp(record.created, datefmt, self.converter)

    def request_line(self, line: "RequestLine") -> str | None:
        """What `format` makes of the request line's record, made without one; None where this formatter
        was given another format than the API's (then the record is made and formatted)."""
        if self._fmt != TEXT_FORMAT or self.datefmt is None:
            return None
        stamp = self._seconds.stamp(line.created, self.datefmt, self.converter)
        text = f"{stamp} {line.levelname:<7} {REQUEST_LOGGER}: {line.message} rid={line.request_id}"
        return escape_controls(text)

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info or record.exc_text or record.stack_info):
            # The common line, formatted as `logging.Formatter.format` does (which also sets `message`
            # and `asctime` on the record) without a traceback to leave out of a copy.
            record.message = record.getMessage()
            if self.usesTime():
                record.asctime = self.formatTime(record, self.datefmt)
            text = self.formatMessage(record)
            if (rid := _request_id(record)) is not None:
                text += f" rid={rid}"
            return escape_controls(text)
        # A copy: other handlers of the same record see it unchanged, its traceback included.
        line = copy.copy(record)
        line.msg, line.args = record.getMessage(), None
        line.exc_info, line.exc_text, line.stack_info = None, None, None
        text = super().format(line)
        if (rid := _request_id(record)) is not None:
            text += f" rid={rid}"
        text = escape_controls(text)
        return "\n".join([text, *(CONTINUATION + detail for detail in _details(self, record))])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields, every string in
    them escaped (JSON would keep a line break on one line, but a viewer that decodes it would not)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seconds = _SecondsCache()

    def request_line(self, line: "RequestLine") -> str:
        """What `format` makes of the request line's record (its `extra` fields in their order), made
        without one."""
        # `json.dumps` of the same dict, written out: its separators, its quoting of strings (ASCII with
        # escapes) and its spelling of numbers (`repr`), the keys in their order. 8 -> ~3 µs a line.
        return (
            f'{{"time": "{self._utc_time(line.created, line.msecs)}", "level": "{line.levelname}", '
            f'"logger": "{REQUEST_LOGGER}", "message": {_json_string(line.message)}, '
            f'"method": {_json_string(line.method)}, "path": {_json_string(line.path)}, '
            f'"status": {line.status!r}, "duration_ms": {_json_number(round(line.duration_ms, 2))}, '
            f'"request_id": {_json_string(line.request_id)}}}'
        )

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._utc_time(record.created, int(record.msecs)),
            "level": record.levelname,
            "logger": escape_controls(record.name),
            "message": escape_controls(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[escape_controls(key)] = _safe(value)
        if "request_id" not in entry and (rid := request_id.get()) is not None:
            entry["request_id"] = escape_controls(rid)
        if details := _details(self, record):
            entry["exception"] = "\n".join(details)
        return json.dumps(entry)

    def _utc_time(self, created: float, msecs: int) -> str:
        """The line's time in UTC to the millisecond: 2026-12-03T07:05:09.123Z."""
        return f"{self._seconds.stamp(created, ISO_SECONDS, time.gmtime)}.{msecs:03d}Z"


class DropStartupTraceback(logging.Filter):
    """The lifespan already logged why startup failed in one line; uvicorn would repeat it as a
    traceback. Keep the one line. Only uvicorn's records are looked at: a request with the method
    `Traceback` and `DatabaseUnreachable` in its path must still have its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("uvicorn."):  # a request line may read anything: it is never dropped
            return True
        message = record.getMessage()
        return not (message.startswith("Traceback") and "DatabaseUnreachable" in message)


FLUSH_INTERVAL_SECONDS = 0.1
FLUSH_AT_BYTES = 64 * 1024


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes its lines in batches: each record is formatted when it is logged,
    and the lines waiting go out in one write FLUSH_INTERVAL_SECONDS after the first of them at the
    latest, at once when a record of WARNING or above arrives or FLUSH_AT_BYTES are waiting, and on
    `flush()` and `close()` (`flush_batches()` at the end of the lifespan, `logging.shutdown` at exit).
    A process killed outright loses at most the lines of the last interval."""

    _instances: ClassVar["weakref.WeakSet[BatchingStreamHandler]"] = weakref.WeakSet()

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        _lean_records()
        self._waiting: list[str] = []
        self._waiting_bytes = 0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._closed = False
        BatchingStreamHandler._instances.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # as StreamHandler: a record that cannot be formatted is reported, not raised
            self.handleError(record)
            return
        self._add(line, record.levelno)  # `handle` holds the handler's lock around `emit`

    def emit_formatted(self, line: str, levelno: int) -> None:
        """`emit` of a line already formatted (`log_request`), under the lock `handle` would take."""
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._add(line, levelno)

    def _add(self, line: str, levelno: int) -> None:
        line += self.terminator
        self._waiting.append(line)
        self._waiting_bytes += len(line)
        if levelno >= logging.WARNING or self._waiting_bytes >= FLUSH_AT_BYTES:
            self.flush()
        elif len(self._waiting) == 1:
            self._start_flusher()
            self._wake.set()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            if self._waiting:
                lines, self._waiting, self._waiting_bytes = "".join(self._waiting), [], 0
                self.stream.write(lines)
            super().flush()

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._wake.set()
        super().close()

    def _start_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():  # none yet, or this is a forked child
            self._flusher = threading.Thread(target=self._flush_periodically, name="pyauth-log", daemon=True)
            self._flusher.start()

    def _flush_periodically(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(FLUSH_INTERVAL_SECONDS)
            try:
                self.flush()
            except Exception:  # noqa: S112 - a failing stream must not end the thread; the next try reports
                continue


def _lean_records() -> None:
    """Records of this process skip what no pyauth formatter writes: the caller's file, line and function
    (a walk up the stack for every record), and the thread's, process's and asyncio task's names (the
    switches of Python's logging HOWTO, "Optimization"). Set by the API server's handler, whose records
    are one per request: 24 -> 14 µs of CPU a line, measured in the API image."""
    logging._srcfile = None  # the documented switch for caller information
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined,unused-ignore]  # Python 3.12+


def flush_batches() -> None:
    """Write out every batching handler's waiting lines (the API's lifespan, as it ends)."""
    for handler in list(BatchingStreamHandler._instances):
        handler.flush()


def logging_config(settings: Settings, *, batched: bool = False) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a process; `batched` (the API server): pyauth's own records
    through a `BatchingStreamHandler`."""
    formatter = (
        {"()": JsonFormatter}
        if settings.LOG_FORMAT == "json"
        else {
            "()": TextFormatter,
            "fmt": TEXT_FORMAT,
            "datefmt": ISO_SECONDS,
        }
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
            },
            "batched": {
                "()": BatchingStreamHandler,
                "formatter": "default",
                "filters": ["startup"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "pyauth": {"level": settings.LOG_LEVEL}
            | ({"handlers": ["batched"], "propagate": False} if batched else {}),
            "uvicorn": {"level": settings.LOG_LEVEL},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
            "alembic": {"level": "WARNING"},
            "alembic.runtime.migration": {"level": "INFO"},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))


@dataclass(frozen=True, slots=True)
class RequestLine:
    """The one log line of a request, as `app.core.requests` writes it."""

    method: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    levelno: int
    created_ns: int = field(default_factory=time.time_ns)

    @property
    def levelname(self) -> str:
        return logging.getLevelName(self.levelno)

    @property
    def created(self) -> float:
        return self.created_ns / 1e9  # as LogRecord computes it

    @property
    def msecs(self) -> int:
        """The whole milliseconds of the time, as LogRecord computes them (0 where `created` rounded up to
        the next second)."""
        msecs = (self.created_ns % 1_000_000_000) // 1_000_000
        if msecs == 999 and int(self.created) != self.created_ns // 1_000_000_000:
            return 0
        return msecs

    @property
    def message(self) -> str:
        return f"{self.method} {self.path} {self.status} {self.duration_ms:.1f}ms"

    def fields(self) -> dict[str, Any]:
        """The record's `extra` fields, in their order (the JSON format writes them)."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 2),
            "request_id": self.request_id,
        }


# A logger is made once and kept for the process (configuration changes its handlers, never replaces it).
_REQUEST_LOG = logging.getLogger(REQUEST_LOGGER)


def log_request(line: RequestLine) -> None:
    """Write the request line as `logging.getLogger(REQUEST_LOGGER).log(...)` would, the same line in
    either format, but where the request log goes only to the API server's batching handler with one of
    pyauth's formatters (how `python -m app` configures it), formatted straight from its fields instead of
    through a LogRecord, the logger's and the handler's machinery: an access line cost ~27 µs of CPU in
    the served API (JWKS: 156 -> 129 µs a request at LOG_LEVEL=WARNING). Any other configuration (another
    handler, a filter, propagation to the root, a test's capture) takes the general way."""
    logger = _REQUEST_LOG
    if not logger.isEnabledFor(line.levelno):
        return
    formatted = _direct_line(logger, line)
    if formatted is not None:
        handler, text = formatted
        handler.emit_formatted(text, line.levelno)
        return
    logger.log(
        line.levelno,
        "%s %s %d %.1fms",  # the formatter adds `rid=…`, as to every line of the request
        line.method,
        line.path,
        line.status,
        line.duration_ms,
        extra=line.fields(),
    )


def _direct_line(logger: logging.Logger, line: RequestLine) -> "tuple[BatchingStreamHandler, str] | None":
    """The one handler the line would reach and the line as it would format it, where that handler is a
    `BatchingStreamHandler` with pyauth's formatter and no filter but `DropStartupTraceback` (which never
    drops a request line), and nothing else would see the record; else None."""
    if logger.filters or logger.handlers or not logger.propagate:
        return None
    parent = logger.parent
    if parent is None or parent.propagate or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if type(handler) is not BatchingStreamHandler or line.levelno < handler.level:
        return None
    for each in handler.filters:
        if type(each) is not DropStartupTraceback:
            return None
    formatter = handler.formatter
    if type(formatter) is TextFormatter or type(formatter) is JsonFormatter:
        text = formatter.request_line(line)
        return None if text is None else (handler, text)
    return None

"""The API server's batched log lines (`app.core.logging.BatchingStreamHandler`): one write for many lines,
nothing lost or reordered, a warning written at once with what came before it, the rest within the
interval, and everything on close; only pyauth's records are batched, and only in the API server."""

import io
import logging
import time
from collections.abc import Iterator

import pytest

from app.core import logging as pyauth_logging
from app.core.logging import BatchingStreamHandler, flush_batches, logging_config
from tests.conftest import make_settings


class CountedWrites(io.StringIO):
    """A text stream that counts the writes it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def stream_and_logger() -> Iterator[tuple[CountedWrites, logging.Logger]]:
    stream = CountedWrites()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"pyauth.test-batches.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield stream, logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_many_lines_go_out_in_one_write_in_their_order(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger
    for number in range(200):
        logger.info("request %d", number)
    flush_batches()
    assert stream.getvalue() == "".join(f"INFO request {number}\n" for number in range(200))
    assert stream.writes == 1


def test_a_warning_is_written_at_once_with_the_lines_before_it(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger
    logger.info("first")
    logger.warning("then a warning")
    assert stream.getvalue() == "INFO first\nWARNING then a warning\n"


def test_waiting_lines_go_out_within_the_interval_without_a_flush(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger
    logger.info("on its own")
    deadline = time.monotonic() + 5  # the interval is 0.1 s; a loaded machine may take longer to schedule
    while "on its own" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "INFO on its own\n"


def test_close_writes_what_waits(stream_and_logger: tuple[CountedWrites, logging.Logger]) -> None:
    stream, logger = stream_and_logger
    logger.info("last words")
    logger.handlers[0].close()
    assert stream.getvalue() == "INFO last words\n"


def test_a_full_batch_goes_out_without_waiting(
    stream_and_logger: tuple[CountedWrites, logging.Logger],
) -> None:
    stream, logger = stream_and_logger
    line = "x" * 1000
    for _ in range(pyauth_logging.FLUSH_AT_BYTES // 1000 + 1):
        logger.info(line)
    assert stream.writes >= 1
    assert len(stream.getvalue()) >= pyauth_logging.FLUSH_AT_BYTES


def test_only_the_api_servers_pyauth_records_are_batched() -> None:
    settings = make_settings()
    server = logging_config(settings, batched=True)
    assert server["loggers"]["pyauth"]["handlers"] == ["batched"]
    assert server["loggers"]["pyauth"]["propagate"] is False
    assert server["handlers"]["batched"]["()"] is BatchingStreamHandler
    assert "handlers" not in server["loggers"]["uvicorn"]  # uvicorn's lines: the plain handler, at once
    assert "handlers" not in logging_config(settings)["loggers"]["pyauth"]  # the CLIs and the mail worker

"""The SQL a block of test code makes the app send, for tests whose subject is how many round trips a path
takes: every statement any engine executes that names one of the given tables, whitespace collapsed, and
with `driver` (the test's connection under the app's sessions) those the app sends to asyncpg itself."""

import contextlib
from collections.abc import Iterator

import asyncpg
from asyncpg.connection import LoggedQuery
from sqlalchemy import Engine, event


@contextlib.contextmanager
def statements_on(*tables: str, driver: asyncpg.Connection | None = None) -> Iterator[list[str]]:
    """Yield the list the statements naming any of `tables` are appended to while the block runs. (asyncpg
    tells its loggers soon after a statement, not in it: the block's later awaits let them run.)"""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if any(table in statement for table in tables):
            statements.append(" ".join(statement.split()))

    def logged(query: LoggedQuery) -> None:
        seen(None, None, query.query)

    event.listen(Engine, "before_cursor_execute", seen)
    if driver is not None:
        driver.add_query_logger(logged)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
        if driver is not None:
            driver.remove_query_logger(logged)

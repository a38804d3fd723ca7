"""The SQL a block of test code makes the app send, for tests whose subject is how many round trips a path
takes: every statement any engine executes that names one of the given tables, whitespace collapsed."""

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, event


@contextlib.contextmanager
def statements_on(*tables: str) -> Iterator[list[str]]:
    """Yield the list the statements naming any of `tables` are appended to while the block runs."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if any(table in statement for table in tables):
            statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", seen)

"""`app.core.forms`: an urlencoded body read to the very pairs Starlette's own parser makes of it, and the
same refusals at Starlette's limits."""

import asyncio
from collections.abc import AsyncGenerator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException

from app.core.forms import MAX_FIELD_BYTES, MAX_FIELDS, urlencoded_items

# Bytes that mean something to a form parser, and some that mean nothing, to build bodies from.
PIECES = (
    b"&", b"&&", b"=", b"==", b"+", b"%", b"%2", b"%26", b"%3D", b"%3d", b"%2B", b"%ff", b"%C3%A9", b"%zz",
    b"\xff", b"\xc3\xa9", b"\x00", b";", b" ", b"a", b"grant_type", b"refresh_token", b"x" * 40,
)  # fmt: skip
BODIES = st.one_of(st.lists(st.sampled_from(PIECES), max_size=24).map(b"".join), st.binary(max_size=96))


def starlette_items(body: bytes) -> list[tuple[str, object]]:
    """What `await request.form()` makes of `body` as an urlencoded form, in one chunk as the app gets it."""

    async def stream() -> AsyncGenerator[bytes]:
        yield body

    async def parse() -> list[tuple[str, object]]:
        return list((await FormParser(Headers(), stream()).parse()).multi_items())

    return asyncio.run(parse())


@settings(max_examples=1000, deadline=None, database=None)
@given(BODIES)
def test_an_urlencoded_body_is_read_as_starlette_reads_it(body: bytes) -> None:
    assert urlencoded_items(body) == starlette_items(body)


@pytest.mark.parametrize(
    "body",
    [
        b"&".join(b"f%d=v" % number for number in range(MAX_FIELDS)),
        b"&".join(b"f%d=v" % number for number in range(MAX_FIELDS + 1)),
        b"name=" + b"v" * (MAX_FIELD_BYTES - 4),
        b"name=" + b"v" * (MAX_FIELD_BYTES - 3),
        b"n" * (MAX_FIELD_BYTES + 1),
    ],
    ids=["most fields", "one field too many", "largest field", "one byte too large", "a name too large"],
)
def test_the_limits_are_starlette_s(body: bytes) -> None:
    try:
        expected: object = starlette_items(body)
    except MultiPartException as refusal:
        with pytest.raises(HTTPException) as refused:
            urlencoded_items(body)
        assert (refused.value.status_code, refused.value.detail) == (400, refusal.message)
        return
    assert urlencoded_items(body) == expected

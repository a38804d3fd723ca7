"""One error base class with a status, a stable code and a message (rendered by `app.core.error_handlers`).

Services raise `PyauthError` subclasses, never `HTTPException`. Every error leaves the API as
`{"error": "<stable_code>", "detail": "<human text>"}` and never carries a stack trace. A validation error
adds `fields`, one entry per invalid input (its location and message), so a form can show each error next
to its input.
"""

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    # Only named in annotations: code that merely raises these errors need not import the web framework.
    from fastapi.responses import Response

log = logging.getLogger("pyauth.errors")

# A body with thousands of invalid list items stays a short answer.
MAX_FIELD_ERRORS = 50


class FieldError(BaseModel):
    """One invalid input of a request that failed validation."""

    location: list[str | int] = Field(
        description="Where the input is: its source (`body`, `query`, `path`, `header`), then its name and, "
        'for nested or listed values, the keys and indexes down to it, e.g. `["body", "new_password"]`.'
    )
    field: str = Field(
        description="The location without its source, dotted (`new_password`, `roles.0`), for a form to put "
        "the message next to its input; empty when the whole body is wrong."
    )
    message: str = Field(description="What is wrong, in words (never the value sent).")
    type: str = Field(
        description="A stable code of the rule that failed, e.g. `missing`, `string_too_short`."
    )


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str
    detail: str
    fields: list[FieldError] = Field(
        default_factory=list,
        description="Only in a `validation_error`: each invalid input, at most "
        f"{MAX_FIELD_ERRORS}. Absent otherwise.",
    )


class PyauthError(Exception):
    """A failure the client can act on. Subclasses set `status_code`, `code` and `message`."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "The request could not be processed."
    headers: Mapping[str, str] | None = None

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.detail = detail or self.message
        if headers is not None:
            self.headers = headers
        super().__init__(self.detail)


class OAuthError(PyauthError):
    """An error of the RFC 6749 token or RFC 7009 revocation endpoint, rendered as that RFC says:
    `{"error": "<code>", "error_description": "<text>"}`."""

    status_code = 400
    code = "invalid_request"
    message = "The request is missing a parameter or is otherwise malformed."
    # Members the answer carries besides `error` and `error_description` (the `mfa_token` and `methods`
    # of `mfa_required`); never a secret of the server's.
    body_extra: Mapping[str, Any] | None = None


class ServiceUnavailable(PyauthError):
    status_code = 503
    code = "service_unavailable"
    message = "The service is temporarily unavailable. Try again shortly."


class RolledBackRefusal(PyauthError):
    """A refusal whose request must leave no trace but the refusal itself: its handler rolls the request's
    session back (undoing whatever the attempt wrote), lets `keep` write the record of the refusal and
    commits it, then answers `answer()`, or `error`'s own answer when that is None. Page code raises it
    instead of rolling back itself; `get_db` has rolled back already when the handler runs."""

    def __init__(self, error: PyauthError, *, db: AsyncSession) -> None:
        super().__init__(error.detail, headers=error.headers)
        self.error = error
        self.db = db

    async def keep(self, db: AsyncSession) -> None:
        """Write what must outlive the rollback (an audit row); committed by the handler."""

    def answer(self) -> "Response | None":
        return None


# OpenAPI documentation of error answers, so that the served document describes every response the API
# gives (schemathesis checks it in `make faults`). Endpoints list their statuses with `error_responses`.

# What the request guard (app.core.security) answers to any POST, PUT or PATCH before an endpoint runs: a
# body that is not valid JSON or nests too deep (400), is too large (413), or has another media type (415).
GUARD_ERRORS = (400, 413, 415)
# What any endpoint that uses the database answers while it is down or the pool stays exhausted.
UNAVAILABLE = 503

_ERROR_DESCRIPTIONS = {
    400: "Malformed or refused: the body is not valid JSON or nests deeper than MAX_JSON_DEPTH, "
    "or a rule refused the request; `error` says which.",
    401: "No access token, or one that is invalid or expired, or whose session has ended.",
    403: "The caller lacks the role this needs, or (`password_reset_required`) too many wrong current "
    "passwords were tried, or (`reauthentication_required`) the sign-in is too old for this change, or "
    "(`mfa_required`, the token endpoint) a second factor must finish the login.",
    404: "No such resource.",
    409: "Conflicts with the current state; `error` says how.",
    413: "The body is larger than MAX_BODY_BYTES.",
    415: "The body is neither JSON nor, where the endpoint takes one, a form.",
    422: "A parameter or a field of the body is invalid: `detail` says which, and for a `validation_error` "
    "`fields` lists each invalid input with its location and message.",
    429: "Too many requests: try again after `Retry-After` seconds.",
    503: "The database is unreachable, or no pooled connection came free within DB_POOL_TIMEOUT, or "
    "PASSWORD_HASH_QUEUE_MAX password checks are already waiting (then with `Retry-After`).",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": '`Bearer error="invalid_token"`, or `Bearer realm="pyauth"` alone when no bearer '
            "token was sent (RFC 6750 §3.1).",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds until a new request can succeed.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    503: {
        "Retry-After": {
            "description": "When the password-hashing queue is full: seconds to wait.",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


# The codes a status carries wherever the status is listed, because the framework or a middleware answers
# it the same way for every operation: the request guard (400 `json_too_deep`, 413, 415), a form the parser
# cannot read (400 `bad_request`), request validation and Postgres's refusal of a character (422), the
# rate limits (429), an unreachable database or a full hashing queue (503), an access token (401). What an
# operation itself refuses comes from the `PyauthError` subclasses it names in `raises`.
COMMON_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request", "json_too_deep"),
    401: ("invalid_token",),
    413: ("request_too_large",),
    415: ("unsupported_media_type",),
    422: ("validation_error", "invalid_character"),
    429: ("too_many_requests",),
    503: (ServiceUnavailable.code,),
}


def error_responses(
    *status_codes: int,
    raises: Iterable[type[PyauthError]] = (),
    model: Any = ErrorBody,
    for_html_route: bool = False,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint can answer, with `ErrorBody` unless `model` says
    otherwise, e.g. `error_responses(*GUARD_ERRORS, 401, 422, UNAVAILABLE, raises=(EmailAlreadyRegistered,))`.

    Each entry's `error` is an enum of the codes the operation can answer with that status: the status's
    `COMMON_CODES` if it is listed, and the `code` of each error class in `raises` at its `status_code`
    (which adds the status if it is not listed). Name the classes, not their codes, so that a renamed code
    follows into the document.

    `for_html_route`: the route answers HTML (a page) but its errors in JSON. FastAPI would document a
    model in the route's media type, so the entries name `ErrorBody` themselves, as application/json."""
    codes: dict[int, list[str]] = {status: list(COMMON_CODES.get(status, ())) for status in status_codes}
    for error in raises:
        found = codes.setdefault(error.status_code, [])
        if error.code not in found:
            found.append(error.code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(codes):
        entry: dict[str, Any] = {"description": _ERROR_DESCRIPTIONS.get(status, "Error")}
        schema: dict[str, Any] = {}
        if codes[status]:
            # Merged by FastAPI with the model's `$ref` (OpenAPI 3.1: the body is the model AND this).
            schema["properties"] = {"error": {"enum": sorted(codes[status])}}
        if for_html_route:
            schema["$ref"] = f"#/components/schemas/{ErrorBody.__name__}"
        else:
            entry["model"] = model
        if schema:
            entry["content"] = {"application/json": {"schema": schema}}
        if status in _ERROR_HEADERS:
            entry["headers"] = _ERROR_HEADERS[status]
        responses[status] = entry
    return responses

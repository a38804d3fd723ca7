"""The served OpenAPI document tells a generated client what the API does: a name per operation, the
error codes each operation can answer per status, the rules of a new password, and, for a path shared by
an HTML page and a JSON route, the methods the path serves (RFC 9110 §15.5.6: `Allow` on a 405)."""

import uuid
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.auth.helpers import PASSWORD, register, signed_up, unique_email

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def error_codes(document: dict[str, Any], path: str, method: str, status: int) -> list[str]:
    response = document["paths"][path][method]["responses"][str(status)]
    codes: list[str] = response["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
    return codes


async def test_validation_errors_list_each_invalid_field_with_its_location_and_message(
    client: httpx.AsyncClient,
) -> None:
    secret = "a-password-sent-as-a-number-" + uuid.uuid4().hex
    response = await client.post("/auth/register", json={"email": ["not", "a", "string"], "pasword": secret})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error" and body["detail"]
    fields = {field["field"]: field for field in body["fields"]}
    assert fields["email"]["location"] == ["body", "email"]
    assert fields["email"]["type"] == "string_type" and fields["email"]["message"]
    assert fields["password"]["location"] == ["body", "password"]
    assert fields["password"]["type"] == "missing"
    assert fields["pasword"]["type"] == "extra_forbidden"
    assert secret not in response.text, "a field's value is never echoed"
    query = await client.get("/auth/verify", params={"token": "x" * 513})
    assert query.status_code == 422
    assert query.json()["fields"][0]["location"] == ["query", "token"]
    assert query.json()["fields"][0]["field"] == "token"


async def test_other_errors_keep_error_and_detail_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


async def test_every_operation_has_a_unique_name(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    named = {(path, method): operation["operationId"] for path, method, operation in operations(document)}
    assert named["/auth/token", "post"] == "auth_token"
    assert named["/users/me", "get"] == "users_read_me"
    assert named["/users/me", "patch"] == "users_update_me"
    assert named["/admin/users/{user_id}", "delete"] == "admin_delete_user"


async def test_every_documented_error_lists_the_codes_its_operation_can_answer(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            # The health checks answer 503 with their own report (`status`), for probes, not the error body.
            if int(status) < 400 or json_body is None or path in ("/health/live", "/health/ready"):
                continue
            codes = error_codes(document, path, method, int(status))
            assert codes and all(isinstance(code, str) for code in codes), (path, method, status)
    assert error_codes(document, "/auth/token", "post", 400) == [
        "bad_request",
        "invalid_grant",
        "invalid_request",
        "invalid_scope",  # issue 11: a scope the client may not have (RFC 6749 §5.2)
        "json_too_deep",
        "unauthorized_client",  # issue 11: a client not allowed the grant (RFC 6749 §5.2)
        "unsupported_grant_type",
    ]
    assert "email_already_registered" in error_codes(document, "/auth/register", "post", 409)
    assert "password_too_short" in error_codes(document, "/users/me/password", "post", 422)
    assert error_codes(document, "/admin/users/{user_id}", "get", 403) == [
        "admin_required",
        "mfa_required_for_admins",
    ]


async def test_the_codes_real_errors_carry_are_in_their_operations_enum(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    def documented(response: httpx.Response, path: str, method: str) -> None:
        assert response.json()["error"] in error_codes(document, path, method, response.status_code)

    email, tokens = await signed_up(client)
    documented(await register(client, email), "/auth/register", "post")
    documented(await register(client, unique_email(), "short"), "/auth/register", "post")
    documented(await client.post("/auth/register", json={"email": 1}), "/auth/register", "post")
    wrong = {"grant_type": "password", "username": email, "password": PASSWORD + "x"}
    documented(await client.post("/auth/token", data=wrong), "/auth/token", "post")
    documented(await client.post("/auth/token", data={"grant_type": "magic"}), "/auth/token", "post")
    documented(await client.get("/users/me"), "/users/me", "get")
    documented(
        await client.get(f"/admin/users/{uuid.uuid4()}", headers=tokens.bearer),
        "/admin/users/{user_id}",
        "get",
    )
    change = {"current_password": "not-it", "new_password": "another long password"}
    documented(
        await client.post("/users/me/password", json=change, headers=tokens.bearer),
        "/users/me/password",
        "post",
    )
    documented(
        await client.delete(f"/auth/sessions/{uuid.uuid4()}", headers=tokens.bearer),
        "/auth/sessions/{session_id}",
        "delete",
    )
    documented(
        await client.post("/auth/verify/confirm", json={"token": "unknown"}), "/auth/verify/confirm", "post"
    )


async def test_the_document_states_the_length_rule_of_a_new_password(
    client: httpx.AsyncClient, document: dict[str, Any], settings: Settings
) -> None:
    schemas = document["components"]["schemas"]
    for model, field in (
        ("UserCreate", "password"),
        ("PasswordChange", "new_password"),
        ("PasswordReset", "new_password"),
    ):
        rule = schemas[model]["properties"][field]
        assert rule["minLength"] == settings.PASSWORD_MIN_LENGTH == 15, model
        assert rule["maxLength"] == settings.PASSWORD_MAX_LENGTH == 128, model
        assert "PASSWORD_MIN_LENGTH" in rule["description"]
    assert schemas["PasswordChange"]["properties"]["current_password"]["minLength"] == 1
    assert schemas["RolesUpdate"]["properties"]["roles"]["items"]["enum"] == ["user", "admin"]
    # The server holds the same line: one code point short is refused, the policy's own code kept.
    short = await register(client, unique_email(), "correct horse b"[: settings.PASSWORD_MIN_LENGTH - 1])
    assert short.status_code == 422 and short.json()["error"] == "password_too_short"


async def test_every_path_allows_exactly_the_methods_the_document_lists_for_it(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    """Pages for mailed links share their paths with JSON routes (`/auth/email/confirm`: GET page, POST
    JSON): a 405, to OPTIONS or to a method no route takes, lists exactly the documented methods."""
    for path, item in document["paths"].items():
        documented = ", ".join(sorted(method.upper() for method in item if method in METHODS))
        url = path.replace("{user_id}", str(uuid.uuid4())).replace("{session_id}", str(uuid.uuid4()))
        for method in ("OPTIONS", "TRACE"):
            response = await client.request(method, url)
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == documented, (method, path)
    for path in ("/auth/verify", "/auth/email/confirm", "/auth/email/cancel", "/auth/password/reset"):
        assert "get" in document["paths"][path], path
    assert "post" in document["paths"]["/auth/email/confirm"]

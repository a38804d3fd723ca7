"""The authorization server's metadata at both addresses (OpenID Connect Discovery §3, RFC 8414 §2/§3):
one document, true for what is served."""

from typing import Any

import httpx

from app.auth.grants.client_auth import AUTH_METHODS
from app.auth.grants.registry import GRANTS
from app.auth.scopes import USER_SCOPES
from app.oauth.schemas import UserInfoResponse

# RFC 8414 §2: REQUIRED, and what is REQUIRED once an endpoint exists; OIDC Discovery §3 adds its own.
RFC8414_REQUIRED = {"issuer", "response_types_supported"}
OIDC_REQUIRED = {
    "issuer",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
}


async def documents(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    oidc = await client.get("/.well-known/openid-configuration")
    rfc8414 = await client.get("/.well-known/oauth-authorization-server")
    assert oidc.status_code == rfc8414.status_code == 200
    return oidc.json(), rfc8414.json()


async def test_rfc8414_metadata_has_the_required_fields_and_both_documents_agree(
    client: httpx.AsyncClient,
) -> None:
    oidc, rfc8414 = await documents(client)
    assert oidc == rfc8414
    assert oidc.keys() >= RFC8414_REQUIRED | OIDC_REQUIRED
    issuer = oidc["issuer"]
    assert "?" not in issuer and "#" not in issuer  # RFC 8414 §2
    for name, value in oidc.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            assert value.startswith(issuer + "/"), name
        if name.endswith("_auth_methods_supported"):
            assert name.removesuffix("_auth_methods_supported") in oidc, name


async def test_rfc8414_metadata_lists_every_endpoint_and_each_one_answers(client: httpx.AsyncClient) -> None:
    oidc, _ = await documents(client)
    issuer = oidc["issuer"]
    for name in ("token_endpoint", "revocation_endpoint", "introspection_endpoint", "userinfo_endpoint"):
        path = oidc[name].removeprefix(issuer)
        assert (await client.post(path, data={})).status_code != 404, name


async def test_rfc8414_metadata_is_true_to_the_grants_auth_methods_scopes_and_claims(
    client: httpx.AsyncClient,
) -> None:
    oidc, _ = await documents(client)
    assert oidc["grant_types_supported"] == list(GRANTS.handlers)
    assert oidc["token_endpoint_auth_methods_supported"] == AUTH_METHODS
    assert oidc["revocation_endpoint_auth_methods_supported"] == AUTH_METHODS
    assert oidc["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert oidc["scopes_supported"] == list(USER_SCOPES)
    assert set(UserInfoResponse.model_fields) <= set(oidc["claims_supported"])
    assert oidc["response_types_supported"] == ["code"]  # the authorization endpoint (app.oidc)


async def test_the_revocation_endpoint_keeps_its_operation_id_at_its_first_path(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/auth/revoke"]["post"]["operationId"] == "auth_revoke"
    assert paths["/oauth2/revoke"]["post"]["operationId"] == "oauth_revoke"
    assert paths["/oauth2/introspect"]["post"]["operationId"] == "oauth_introspect"
    assert paths["/oauth2/userinfo"]["get"]["operationId"] == "oauth_userinfo_get"
    assert paths["/oauth2/userinfo"]["post"]["operationId"] == "oauth_userinfo_post"
    assert (
        "invalid_client"
        in paths["/oauth2/introspect"]["post"]["responses"]["401"]["content"]["application/json"]["schema"][
            "properties"
        ]["error"]["enum"]
    )

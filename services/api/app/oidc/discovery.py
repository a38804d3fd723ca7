"""The discovery fields of the authorization endpoint and its code flow (RFC 8414 §2, OpenID Connect
Discovery §3, RFC 9207 §3) and of the end-session endpoint (RP-Initiated Logout 1.0 §2.1), kept here
so that the discovery document adds them with one call."""

from typing import Any

from app.core.templating import supported_locales
from app.oidc.acr import ACR_VALUES
from app.oidc.authorize import PROMPTS, RESPONSE_MODE

AUTHORIZE_PATH = "/oauth2/authorize"
END_SESSION_PATH = "/oauth2/logout"  # RP-Initiated Logout 1.0 §2


def authorization_metadata(issuer: str, id_token_algorithms: list[str]) -> dict[str, Any]:
    return {
        "authorization_endpoint": f"{issuer}{AUTHORIZE_PATH}",
        "end_session_endpoint": f"{issuer}{END_SESSION_PATH}",
        "response_types_supported": ["code"],
        "response_modes_supported": [RESPONSE_MODE],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algorithms,
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": list(PROMPTS),
        # the hosted pages' languages, which `ui_locales` chooses among (app.web.pages)
        "ui_locales_supported": list(supported_locales()),
        # the `acr` of ID and access tokens; `acr_values` may ask for the second (app.oidc.endpoints)
        "acr_values_supported": list(ACR_VALUES),
        # Request objects are refused with OpenID Connect Core §3.1.2.6's errors (app.oidc.authorize), and
        # the `claims` parameter is not read (§5.5: a voluntary request). Said outright: left out,
        # `request_uri_parameter_supported` would mean true (OpenID Connect Discovery §3).
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }

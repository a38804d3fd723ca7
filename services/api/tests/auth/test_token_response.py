"""The token endpoint's body (RFC 6749 §5.1) as `token_response_json` writes it: the very bytes pydantic
writes of `TokenResponse`, the model the OpenAPI document shows, with absent members left out."""

from hypothesis import given, settings
from hypothesis import strategies as st

from app.auth.schemas import TokenResponse, token_response_json

_TEXT = st.one_of(
    st.text(alphabet="ABCxyz019-_.~", min_size=1, max_size=80),  # tokens: base64url and friends
    st.text(max_size=40),  # anything: quotes, backslashes, control characters, non-ASCII, U+2028
)
_OPTIONAL = st.one_of(st.none(), _TEXT)


@settings(max_examples=500, deadline=None, database=None)
@given(
    access_token=_TEXT,
    expires_in=st.integers(min_value=0, max_value=10**12),
    refresh_token=_OPTIONAL,
    scope=_OPTIONAL,
    device_token=_OPTIONAL,
    id_token=_OPTIONAL,
)
def test_rfc6749_token_response_body_is_the_models_json(
    access_token: str,
    expires_in: int,
    refresh_token: str | None,
    scope: str | None,
    device_token: str | None,
    id_token: str | None,
) -> None:
    fields = {
        "access_token": access_token,
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "scope": scope,
        "device_token": device_token,
        "id_token": id_token,
    }
    expected = TokenResponse(**fields).model_dump_json(exclude_none=True).encode()
    assert token_response_json(**fields) == expected  # type: ignore[arg-type]

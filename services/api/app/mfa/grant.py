"""The mfa grant (`urn:pyauth:params:oauth:grant-type:mfa`, an extension grant per RFC 6749 §4.5): the
second step of a password login that answered `mfa_required`. The client sends the `mfa_token` with one
method's field (`otp`, `recovery_code`; see `app.mfa.methods`) and gets the tokens the password grant
would have issued, with the second factor in `amr`."""

from app.auth.grants.base import FormField, GrantHandler, TokenRequest
from app.auth.issuing import IssuedTokens
from app.core.config import Settings
from app.core.errors import OAuthError
from app.mfa import login
from app.mfa.errors import InvalidSecondFactor, SecondFactorThrottled
from app.mfa.methods import METHODS

MFA_GRANT_TYPE = "urn:pyauth:params:oauth:grant-type:mfa"


class MfaGrant(GrantHandler):
    grant_type = MFA_GRANT_TYPE
    title = "Second factor (after mfa_required)"
    fields = (
        FormField("mfa_token", max_length=128, description="From the password grant's mfa_required answer."),
        *(
            FormField(
                method.field,
                max_length=method.max_length,
                required=False,
                description=f"The second factor, method `{method.name}`; exactly one method's field.",
            )
            for method in METHODS
        ),
    )
    errors = (OAuthError, InvalidSecondFactor, SecondFactorThrottled)
    granted_as = "password"

    def enabled(self, settings: Settings) -> bool:
        return settings.password_grant_enabled  # its only first step is the password grant

    async def issue(self, request: TokenRequest) -> IssuedTokens:
        return await login.complete_login(
            request.db,
            mfa_token=request.form["mfa_token"] or "",
            values=request.form,
            oauth_client=request.oauth_client,
            keyring=request.keyring,
            settings=request.settings,
            ctx=request.ctx,
        )

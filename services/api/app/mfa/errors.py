"""The errors of second factors: their management (`/users/me/mfa`) and the second step of a login."""

from app.auth.errors import InvalidGrant
from app.core.errors import OAuthError, PyauthError


class TotpAlreadyEnabled(PyauthError):
    status_code = 409
    code = "totp_already_enabled"
    message = "An authenticator is already active: remove it first to enrol another."


class TotpNotPending(PyauthError):
    status_code = 409
    code = "totp_not_pending"
    message = "No authenticator is waiting for confirmation: start the enrolment first."


class MfaNotEnabled(PyauthError):
    status_code = 404
    code = "mfa_not_enabled"
    message = "No second factor is active on this account."


class InvalidOtp(PyauthError):
    status_code = 400
    code = "invalid_otp"
    message = "The code is not valid (wrong, expired or already used)."


class InvalidSecondFactor(InvalidGrant):
    message = "The second factor or the mfa_token is not valid."


class MfaTokenRefused(PyauthError):
    """`/auth/mfa/webauthn/options` is a JSON endpoint, not the token endpoint: its refusal has the API's
    error body, with the same code the mfa grant would answer."""

    status_code = 400
    code = "invalid_grant"
    message = "The mfa_token is unknown, spent or expired, or the account has no passkey."


class SecondFactorThrottled(OAuthError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many wrong second factors for this account. Try again later."

"""The token endpoint's refusals that belong to authentication (RFC 6749 §5.2 codes)."""

from app.core.errors import OAuthError, PyauthError


class AdminRequired(PyauthError):
    status_code = 403
    code = "admin_required"
    message = "This action requires the admin role."


class MfaRequiredForAdmins(PyauthError):
    status_code = 403
    code = "mfa_required_for_admins"
    message = "Admin actions need a sign-in with a second factor: enrol one, then sign in with it."


# What the admin guard (`CurrentAdmin`) refuses a valid token with, for the routes' documented errors.
ADMIN_GUARD = (AdminRequired, MfaRequiredForAdmins)


class ReauthenticationRequired(PyauthError):
    """A change to how the account signs in (a second factor, a passkey) asked of a sign-in that is not
    recent enough (MFA_REAUTH_SECONDS)."""

    status_code = 403
    code = "reauthentication_required"
    message = "This needs a recent sign-in: sign in again, then retry within MFA_REAUTH_SECONDS."


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    message = "The grant is invalid, expired or revoked."


class InvalidCredentials(InvalidGrant):
    # One message for unknown email, wrong password and inactive account: nothing to enumerate.
    message = "Invalid email or password."


class EmailNotVerified(InvalidGrant):
    message = "The email address is not verified yet. Use the link that was mailed to it."


class RefreshTokenAlreadyUsed(InvalidGrant):
    message = "The refresh token was already used. Use the token issued with it; the session is kept."


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"


class InvalidScope(OAuthError):
    code = "invalid_scope"
    message = "The requested scope is invalid, unknown, or more than the client or grant may have."

"""The names of security events, as stored in `audit_events.event`. Stable strings: they are an API."""

# ruff: noqa: S105 - event names such as "password.changed" are not passwords

from enum import StrEnum


class AuditEvent(StrEnum):
    USER_REGISTERED = "user.registered"
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_THROTTLED = "login.throttled"
    TOKEN_REFRESHED = "token.refreshed"
    REFRESH_REUSE_DETECTED = "refresh.reuse_detected"
    # A spent authorization code presented again (RFC 6749 §4.1.2): `details` holds the code's client_id (and
    # the presenting client's, when another), never the code.
    AUTHORIZATION_CODE_REUSE_DETECTED = "authorization_code.reuse_detected"
    REFRESH_FAILED = "refresh.failed"
    LOGOUT = "session.logout"
    LOGOUT_ALL = "session.logout_all"
    SESSION_REVOKED = "session.revoked"
    TOKEN_REVOKED = "token.revoked"
    PASSWORD_CHANGED = "password.changed"
    CURRENT_PASSWORD_FAILED = "password.current_check_failed"
    CURRENT_PASSWORD_THROTTLED = "password.current_check_throttled"
    PASSWORD_RESET_REQUESTED = "password.reset_requested"
    PASSWORD_RESET = "password.reset"
    VERIFICATION_REQUESTED = "email.verification_requested"
    EMAIL_VERIFIED = "email.verified"
    EMAIL_CHANGE_REQUESTED = "email.change_requested"
    EMAIL_CHANGED = "email.changed"
    EMAIL_CHANGE_CANCELLED = "email.change_cancelled"
    ACCOUNT_LINK_REFUSED = "account.link_refused"
    # Passkeys (app.passkeys): `details` holds the passkey's id and name, never key material.
    PASSKEY_REGISTERED = "passkey.registered"
    PASSKEY_RENAMED = "passkey.renamed"
    PASSKEY_REMOVED = "passkey.removed"
    PASSKEY_ASSERTION_FAILED = "passkey.assertion_failed"
    # A sign counter that did not increase (WebAuthn §7.2 step 21): the authenticator may have been cloned.
    PASSKEY_CLONE_SUSPECTED = "passkey.clone_suspected"
    ADMIN_USER_ACTIVATED = "admin.user_activated"
    ADMIN_USER_DEACTIVATED = "admin.user_deactivated"
    ADMIN_ROLES_CHANGED = "admin.roles_changed"
    ADMIN_USER_DELETED = "admin.user_deleted"
    ADMIN_SESSIONS_ENDED = "admin.sessions_ended"
    ADMIN_MFA_RESET = "admin.mfa_reset"
    ADMIN_CREATED = "admin.created"
    # The client registry (app.clients): `details` holds the client_id, never a secret.
    CLIENT_CREATED = "admin.client_created"
    CLIENT_UPDATED = "admin.client_updated"
    CLIENT_DELETED = "admin.client_deleted"
    CLIENT_SECRET_ROTATED = "admin.client_secret_rotated"
    CLIENT_SECRET_REVOKED = "admin.client_secret_revoked"
    CLIENT_AUTHENTICATION_FAILED = "client.authentication_failed"
    CLIENT_TOKEN_ISSUED = "client.token_issued"  # client_credentials: `details` holds client_id and scope
    RATE_LIMITED = "rate_limit.exceeded"
    MFA_REQUIRED = "login.mfa_required"  # the password was right; a second factor is due (an mfa_token)
    MFA_FAILED = "login.mfa_failed"  # a wrong second factor, or a refused mfa_token
    MFA_THROTTLED = "login.mfa_throttled"
    MFA_TOTP_ENABLED = "mfa.totp_enabled"
    MFA_TOTP_REMOVED = "mfa.totp_removed"
    MFA_RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
    MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used"

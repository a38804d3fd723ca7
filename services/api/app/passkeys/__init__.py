"""Passkeys (W3C WebAuthn Level 3): enrolment, listing, renaming and removal under `/users/me/passkeys`,
and the assertion service that the MFA grant and passwordless sign-in use (`app.passkeys.service`)."""

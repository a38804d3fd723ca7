"""Multi-factor authentication: TOTP, recovery codes, and the second step of a password login."""

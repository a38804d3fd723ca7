"""Signing keys for access and ID tokens (EC, and RSA for RS256 ID tokens): stored encrypted, published as
JWKS ahead of use, rotated without logouts."""

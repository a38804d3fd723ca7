"""Signing keys for access tokens: stored encrypted, published as JWKS, rotated without logouts."""

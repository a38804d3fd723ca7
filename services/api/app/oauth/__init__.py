"""The OAuth 2.0 / OpenID Connect endpoints around the token endpoint: introspection (RFC 7662),
revocation (RFC 7009) and UserInfo (OIDC Core §5.3)."""

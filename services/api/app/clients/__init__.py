"""The OAuth client registry (RFC 6749 §2): the applications that may ask pyauth for tokens, their
secrets, redirect URIs and permissions, and how a client proves who it is at the token endpoint."""

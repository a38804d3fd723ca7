"""Authentication: the token endpoint, sessions (refresh-token families), logout and revocation."""

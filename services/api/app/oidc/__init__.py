"""The OpenID Connect provider's own parts: the authorization endpoint, its codes and the ID token."""

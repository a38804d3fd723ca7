"""pyauth: a self-hosted authentication service."""

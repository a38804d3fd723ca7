"""The grant types of the token endpoint (RFC 6749 §4): one handler module per grant, listed in
`registry.py`."""

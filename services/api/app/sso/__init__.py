"""Browser SSO sessions: the server-side row behind the hosted pages' session cookie."""

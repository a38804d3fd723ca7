"""The hosted pages: sign in, sign up, forgot password, sign out, the signed-in account page, and the
browser SSO session cookie they set (the session rows are `app.sso`'s)."""

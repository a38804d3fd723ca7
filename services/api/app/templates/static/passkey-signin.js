// pyauth: signing in with a passkey on the hosted pages (filled in by the passkey sign-in work).

// pyauth: adding a passkey on the hosted account page (filled in by the account security work).

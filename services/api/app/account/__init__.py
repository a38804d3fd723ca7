"""Account lifecycle proven by emailed single-use tokens: verification, password reset, email change."""

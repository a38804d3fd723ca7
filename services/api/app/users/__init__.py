"""Accounts: the `users` table and what a user can read and change about themselves."""

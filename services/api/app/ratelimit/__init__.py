"""Abuse protection kept in Postgres, so that it holds across API replicas and restarts: per-client-IP
request limits, and per-account login throttling with increasing delays, reserved before the hash, with
known devices (device tokens) counted apart so that nobody can lock the owner out."""

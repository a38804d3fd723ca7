"""Abuse protection kept in Postgres, so that it holds across API replicas and restarts: per-client-IP
request limits, and per-account login throttling with increasing delays."""

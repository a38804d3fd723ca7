"""Retention: the mail worker deletes, on a schedule and in bounded batches, the rows nobody can use any
more (dead sessions and their refresh tokens, expired account tokens, spent authorization codes, ended
client secrets, stale login counters, old rate-limit windows, finished mails)."""

"""Indexes that exist only so the retention pass can delete rows cheaply; declared here, next to the
queries that need them, on tables that other domains own (migration 0011)."""

from sqlalchemy import Index

from app.auth.models import RefreshToken

# Deleting a session deletes its refresh tokens by cascade: without an index on session_id every deleted
# session would cost a scan of refresh_tokens (the largest table). The pass also finds the tokens of dead
# sessions through it. The partial ix_refresh_tokens_unused covers only the one live token per session.
ix_refresh_tokens_session_id = Index("ix_refresh_tokens_session_id", RefreshToken.session_id)

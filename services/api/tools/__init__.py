"""Operator tools of pyauth, run from services/api (`python tools/<name>.py`)."""

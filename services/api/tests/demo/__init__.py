"""The FastAPI demo app that signs users in through pyauth (`demo_app.py`), and its tests."""

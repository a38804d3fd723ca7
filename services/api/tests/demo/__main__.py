"""`python -m tests.demo` (from services/api): the demo app on DEMO_BASE_URL (default
http://127.0.0.1:8001), signing in through the pyauth at DEMO_ISSUER as the client DEMO_CLIENT_ID (with
DEMO_CLIENT_SECRET for a confidential client). README, "The demo app", shows how to register it."""

from urllib.parse import urlsplit

import uvicorn

from tests.demo.demo_app import DemoSettings, create_demo_app

if __name__ == "__main__":
    settings = DemoSettings.from_environment()
    where = urlsplit(settings.base_url)
    uvicorn.run(create_demo_app(settings), host=where.hostname or "127.0.0.1", port=where.port or 8001)

"""Bodies of `/users/me/grants`."""

from datetime import datetime

from pydantic import BaseModel


class AppGrantRead(BaseModel):
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime

"""The base of every request body: unknown fields are refused, so a client can never set a field the
endpoint does not offer (`is_verified`, `roles`, `id`…)."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

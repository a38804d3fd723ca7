"""Request and response bodies of `/users/me/passkeys`."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.passkeys.models import MAX_NAME_LENGTH

UNNAMED: Final = "Passkey"


def _tidy_name(name: str) -> str:
    """Without the spaces around it; a name of spaces only (which the schema cannot tell from a name) is
    `Passkey` rather than a refusal of what the schema allows."""
    return name.strip() or UNNAMED


PasskeyName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH), AfterValidator(_tidy_name)]


class PasskeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PasskeyName = Field(description="A name the user knows the passkey by, e.g. “Work laptop”.")
    credential: dict[str, Any] = Field(
        description="The `PublicKeyCredential` that `navigator.credentials.create()` returned, as its "
        "`toJSON()` gives it (RegistrationResponseJSON: id, rawId, type, response.clientDataJSON, "
        "response.attestationObject, response.transports), answering the latest registration options."
    )


class PasskeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PasskeyName


class PasskeyRead(BaseModel):
    """A passkey as its owner sees it; no key material."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    transports: list[str]
    backup_eligible: bool = Field(description="The passkey may be synced to other devices (WebAuthn BE).")
    backed_up: bool = Field(description="The passkey is synced or backed up now (WebAuthn BS).")

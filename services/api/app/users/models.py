"""The `users` table. `email` holds the canonical form and is unique, so one address is one account."""

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, String, Uuid, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, Timestamps
from app.core.templating import DEFAULT_LOCALE, MAX_LOCALE_LENGTH

USER_ROLE = "user"
ADMIN_ROLE = "admin"
ROLES = (USER_ROLE, ADMIN_ROLE)


class User(Timestamps, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    is_verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    roles: Mapped[list[str]] = mapped_column(
        ARRAY(String(32)), nullable=False, default=lambda: ["user"], server_default=text("'{user}'")
    )
    # The last password change or reset (None: never). Mailed account tokens created before it are refused.
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The language of the mails the account is sent, set from Accept-Language at registration. No CHECK:
    # the supported ones are the catalogs shipped (`app.core.templating`), and an unknown one reads as `en`.
    locale: Mapped[str] = mapped_column(
        String(MAX_LOCALE_LENGTH), nullable=False, default=DEFAULT_LOCALE, server_default=text("'en'")
    )

    # Fetch server-set values (updated_at) with RETURNING, so a flushed user can be serialised at once.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - SQLAlchemy's declarative attribute
    __table_args__ = (CheckConstraint("roles <@ ARRAY['user', 'admin']::varchar[]", name="known_roles"),)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

"""Imports every domain's models so that `Base.metadata` knows all tables (for Alembic and tests).

It lives at the top of `app`, next to `main`, because it names every domain; `core` stays below them all.
"""

from app.account import models as account_models
from app.audit import models as audit_models
from app.auth import models as auth_models
from app.clients import models as clients_models
from app.core.models import Base
from app.keys import models as keys_models
from app.mail import models as mail_models
from app.mfa import models as mfa_models
from app.oidc import models as oidc_models
from app.passkeys import models as passkeys_models
from app.ratelimit import models as ratelimit_models
from app.retention import models as retention_models
from app.sso import models as sso_models
from app.users import models as users_models

__all__ = [
    "Base",
    "account_models",
    "audit_models",
    "auth_models",
    "clients_models",
    "keys_models",
    "mail_models",
    "mfa_models",
    "oidc_models",
    "passkeys_models",
    "ratelimit_models",
    "retention_models",
    "sso_models",
    "users_models",
]

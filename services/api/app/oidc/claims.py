"""The user claims each scope grants (OpenID Connect Core §5.4), for the ID token and UserInfo alike, so
that both say the same about a user and neither says more than the scopes allow.

`email` grants `email` and `email_verified`. `profile` grants the profile claims pyauth keeps: `name` (when
the user set a display name), `locale` and `updated_at` (§5.1; pyauth keeps no other profile claim, and a
claim it has no value for is left out, never sent empty). `address` and `phone` are not served: pyauth keeps
neither, and discovery's `scopes_supported` does not list them.
"""

import math
from collections.abc import Collection
from typing import Any

from app.users.models import User


def scope_claims(user: User, scopes: Collection[str]) -> dict[str, Any]:
    """The claims about `user` that `scopes` grant (without `sub`, which every answer carries)."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims |= {"email": user.email, "email_verified": user.is_verified}
    if "profile" in scopes:
        if user.display_name:
            claims["name"] = user.display_name
        claims |= {"locale": user.locale, "updated_at": math.floor(user.updated_at.timestamp())}
    return claims

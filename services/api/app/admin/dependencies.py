"""`CurrentAdmin`: an authenticated caller who holds the admin role.

The role is read from the user row loaded for this request, not from the token's `roles` claim, so
removing someone's admin role takes effect at once on pyauth's own endpoints.
"""

from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import Authenticated, CurrentAuth
from app.core.errors import PyauthError


class AdminRequired(PyauthError):
    status_code = 403
    code = "admin_required"
    message = "This action requires the admin role."


async def current_admin(auth: CurrentAuth) -> Authenticated:
    """401 for a missing or invalid token (from `CurrentAuth`), 403 for a valid one without the role."""
    if not auth.user.is_admin:
        raise AdminRequired()
    return auth


CurrentAdmin = Annotated[Authenticated, Depends(current_admin)]

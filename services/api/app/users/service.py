"""The rules of the user record itself: profile updates. (Registration and password change belong to
the account lifecycle, `app.account`.)"""

from sqlalchemy.ext.asyncio import AsyncSession

from app.users.models import User
from app.users.schemas import UserUpdate


async def update_profile(db: AsyncSession, user: User, changes: UserUpdate) -> User:
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(user, field, value)
    await db.flush()
    await db.refresh(user)
    return user

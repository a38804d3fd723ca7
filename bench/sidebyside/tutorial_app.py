"""The side-by-side app of `make bench`: `GET /users/me` as a plain FastAPI + async SQLAlchemy app writes
it, the setup of the tutorials: an HS256 JWT from the `Authorization` header (FastAPI's
`OAuth2PasswordBearer`), decoded with PyJWT; an `AsyncSession` per request from a dependency;
`select(User).where(User.id == sub)` through the ORM; the user returned through a pydantic response model.
No session or revocation check, no rate limit, no audit: what pyauth's `me` is read against, with its
stronger checks (issue 13's target: at least twice these requests per second).

It reads pyauth's `users` table (the bench's accounts), read-only: every connection has
`default_transaction_read_only` on, so it cannot write. Configured from the environment by `serve.py`.
"""

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DATABASE_URL = os.environ["SIDEBYSIDE_DATABASE_URL"]
SECRET_KEY = os.environ["SIDEBYSIDE_JWT_SECRET"]
ALGORITHM = "HS256"

engine = create_async_engine(
    DATABASE_URL,
    pool_size=int(os.environ.get("SIDEBYSIDE_POOL_SIZE", "5")),
    max_overflow=int(os.environ.get("SIDEBYSIDE_MAX_OVERFLOW", "10")),
    connect_args={
        "server_settings": {
            "application_name": "pyauth-bench-sidebyside",
            "default_transaction_read_only": "on",
        }
    },
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    hashed_password: Mapped[str] = mapped_column("password_hash", String(255))
    display_name: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool]
    is_verified: Mapped[bool]
    created_at: Mapped[datetime]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str | None
    is_active: bool
    is_verified: bool
    created_at: datetime


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], session: SessionDep) -> User:
    credentials_exception = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
        user_id = uuid.UUID(payload["sub"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        raise credentials_exception from None
    result = await session.execute(select(User).where(User.id == user_id))
    user = result.scalar_one_or_none()
    if user is None or not user.is_active:
        raise credentials_exception
    return user


app = FastAPI(title="side-by-side: FastAPI + SQLAlchemy")


@app.get("/users/me", response_model=UserOut)
async def read_users_me(current_user: Annotated[User, Depends(get_current_user)]) -> User:
    return current_user

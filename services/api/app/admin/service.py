"""The rules of administration: listing and reading users, activating, deactivating, setting roles,
deleting, ending sessions, resetting second factors, and granting the admin role to the first administrator.

Every change takes the admin-roster lock (a transaction-scoped advisory lock) and re-reads the acting
admin under it. Two admins removing each other's role at the same moment therefore run one after the
other, and the second finds it is no longer an admin: the roster never drops to zero through the API.
Since an admin can neither deactivate, delete nor demote themself, at least one active admin remains.

Every change records its audit event, with `actor_id` the admin and `user_id` the target, in the same
transaction.
"""

import logging
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.account.pending import end_pending_tokens
from app.admin import repository
from app.audit import service as audit
from app.audit.events import AuditEvent
from app.auth import sessions
from app.auth.errors import AdminRequired
from app.auth.sessions import Authenticated, SessionEndReason
from app.core.config import Settings
from app.core.context import RequestContext
from app.core.errors import PyauthError
from app.mfa import service as mfa
from app.users import repository as users_repository
from app.users.models import ADMIN_ROLE, ROLES, USER_ROLE, User

log = logging.getLogger("pyauth.admin")


class UserNotFound(PyauthError):
    status_code = 404
    code = "user_not_found"
    message = "No such user."


class CannotDeactivateSelf(PyauthError):
    status_code = 409
    code = "cannot_deactivate_self"
    message = "Administrators cannot deactivate their own account; ask another administrator."


class CannotDeleteSelf(PyauthError):
    status_code = 409
    code = "cannot_delete_self"
    message = "Administrators cannot delete their own account; ask another administrator."


class CannotRemoveOwnAdminRole(PyauthError):
    status_code = 409
    code = "cannot_remove_own_admin_role"
    message = "Administrators cannot remove their own admin role; ask another administrator."


class AccountNotVerified(PyauthError):
    status_code = 409
    code = "account_not_verified"
    message = (
        "The account's email address was never verified: whoever registered it may not own the address. "
        "Have its owner verify it first or, if you know who registered it, run again with --force "
        "(make admin EMAIL=... FORCE=1)."
    )


class UnknownRole(PyauthError):
    status_code = 422
    code = "unknown_role"
    message = f"Unknown role. Known roles: {', '.join(ROLES)}."


@dataclass(frozen=True)
class AdminAction:
    """Who acts, from where, and when (`ctx`): what the audit row of an admin action records."""

    admin: Authenticated
    ctx: RequestContext


# Reading


async def list_users(
    db: AsyncSession,
    *,
    limit: int,
    offset: int,
    email: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> tuple[list[User], int]:
    """One page of users, newest first, and how many match in all. `email` is a case-insensitive
    substring of the canonical email; LIKE wildcards in it match literally."""
    needle = unicodedata.normalize("NFC", email.strip()).lower() if email else None
    return await repository.page_of_users(
        db, limit=limit, offset=offset, email_contains=needle, role=role, is_active=is_active
    )


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    user = await users_repository.get_by_id(db, user_id)
    if user is None:
        raise UserNotFound()
    return user


# Changing


async def set_active(db: AsyncSession, action: AdminAction, user_id: uuid.UUID, *, active: bool) -> User:
    """Activate or deactivate. Deactivation ends every session and pending account token of the user."""
    if not active and user_id == action.admin.user.id:
        raise CannotDeactivateSelf()
    target = await _begin(db, action, user_id)
    was_active = target.is_active
    target.is_active = active
    await db.flush()
    await db.refresh(target)  # updated_at is set by the database
    details: dict[str, object] = {"was_active": was_active}
    if active:
        event = AuditEvent.ADMIN_USER_ACTIVATED
    else:
        event = AuditEvent.ADMIN_USER_DEACTIVATED
        details["sessions_ended"] = await sessions.end_sessions(
            db, SessionEndReason.DEACTIVATED, user_id=target.id, ctx=action.ctx
        )
        details["pending_links_ended"] = await end_pending_tokens(db, target.id, now=action.ctx.now)
    await _record(db, action, event, target.id, details)
    log.info("admin=%s %s user=%s", action.admin.user.id, event, target.id)
    return target


async def set_roles(db: AsyncSession, action: AdminAction, user_id: uuid.UUID, roles: Sequence[str]) -> User:
    """Replace the user's roles. Only known roles; `user` is always kept; an admin keeps their own
    admin role. Takes effect at once on pyauth's own endpoints, and in access tokens issued from the
    next refresh or login on."""
    wanted = normalize_roles(roles)
    if user_id == action.admin.user.id and ADMIN_ROLE not in wanted:
        raise CannotRemoveOwnAdminRole()
    target = await _begin(db, action, user_id)
    before = list(target.roles)
    target.roles = wanted
    await db.flush()
    await db.refresh(target)
    await _record(db, action, AuditEvent.ADMIN_ROLES_CHANGED, target.id, {"before": before, "after": wanted})
    log.info("admin=%s set roles of user=%s to %s", action.admin.user.id, target.id, wanted)
    return target


async def delete_user(db: AsyncSession, action: AdminAction, user_id: uuid.UUID) -> None:
    """Delete the account; its sessions and tokens go with it (ON DELETE CASCADE). Its audit events
    stay: they hold the user's id, not a foreign key."""
    if user_id == action.admin.user.id:
        raise CannotDeleteSelf()
    target = await _begin(db, action, user_id)
    await _record(db, action, AuditEvent.ADMIN_USER_DELETED, target.id, {"roles": list(target.roles)})
    await repository.delete_user(db, target)
    log.info("admin=%s deleted user=%s", action.admin.user.id, user_id)


async def end_sessions(db: AsyncSession, action: AdminAction, user_id: uuid.UUID) -> int:
    """End every session and every pending account token of the user (an administrator's reset of a
    possibly taken-over account); returns how many sessions were live."""
    target = await _begin(db, action, user_id)
    ended = await sessions.end_sessions(
        db, SessionEndReason.REVOKED_BY_ADMIN, user_id=target.id, ctx=action.ctx
    )
    tokens_ended = await end_pending_tokens(db, target.id, now=action.ctx.now)
    await _record(
        db,
        action,
        AuditEvent.ADMIN_SESSIONS_ENDED,
        target.id,
        {"sessions_ended": ended, "pending_links_ended": tokens_ended},
    )
    log.info("admin=%s ended %d sessions of user=%s", action.admin.user.id, ended, target.id)
    return ended


def normalize_roles(roles: Sequence[str]) -> list[str]:
    """Known roles only, `user` always included, in the order of `ROLES`, without duplicates."""
    if any(role not in ROLES for role in roles):
        raise UnknownRole()
    wanted = {*roles, USER_ROLE}
    return [role for role in ROLES if role in wanted]


# The first administrator (CLI and FIRST_ADMIN_* settings)


async def lock_admin_roster(db: AsyncSession) -> None:
    """Transaction-scoped: released by the commit or rollback that ends the caller's transaction."""
    await repository.lock_admin_roster(db)


async def any_admin_exists(db: AsyncSession) -> bool:
    return await repository.any_admin_exists(db)


async def create_admin(
    db: AsyncSession, *, email: str, password_hash: str, ctx: RequestContext, source: str
) -> User | None:
    """A new account holding the admin role, or None if the (canonical) email is taken."""
    user = await users_repository.insert_if_absent(db, email, password_hash)
    if user is None:
        return None
    user.roles = normalize_roles([ADMIN_ROLE])
    await db.flush()
    await audit.record(
        db, AuditEvent.ADMIN_CREATED, ctx=ctx, user_id=user.id, reason=source, details={"promoted": False}
    )
    log.info("admin created user=%s (%s)", user.id, source)
    return user


async def promote_to_admin(
    db: AsyncSession, user: User, *, ctx: RequestContext, source: str, require_verified: bool = True
) -> None:
    """Grant an existing account the admin role (nothing else about it changes).

    Registration is open, so an account under the address an operator expects may be an attacker's:
    an unverified one is refused unless `require_verified` is False (the CLI's --force, or a caller
    that proved ownership otherwise). The audit row of an unverified account's promotion says so."""
    forced = not user.is_verified
    if forced and require_verified:
        raise AccountNotVerified()
    before = list(user.roles)
    user.roles = normalize_roles([*before, ADMIN_ROLE])
    await db.flush()
    details: dict[str, object] = {"promoted": True, "before": before}
    if forced:
        details["unverified"] = True
    await audit.record(db, AuditEvent.ADMIN_CREATED, ctx=ctx, user_id=user.id, reason=source, details=details)
    log.info("admin role granted to user=%s (%s)%s", user.id, source, " unverified" if forced else "")


async def reset_mfa(db: AsyncSession, action: AdminAction, user_id: uuid.UUID, *, settings: Settings) -> None:
    """Remove the user's TOTP authenticator, recovery codes and passkeys (audited with what was removed,
    mailed to the user). Their sessions are left alone: ending them is its own action."""
    target = await _begin(db, action, user_id)
    reset = await mfa.reset_factors(db, target, settings=settings, ctx=action.ctx)
    await _record(
        db,
        action,
        AuditEvent.ADMIN_MFA_RESET,
        target.id,
        {"totp": reset.totp, "recovery_codes": reset.recovery_codes, "passkeys": reset.passkeys},
    )
    log.info("admin=%s reset the factors of user=%s", action.admin.user.id, target.id)


async def _begin(db: AsyncSession, action: AdminAction, user_id: uuid.UUID) -> User:
    """Take the roster lock, check that the actor is still an active admin now that concurrent changes
    are committed, and load the target locked for update."""
    await lock_admin_roster(db)
    actor = await repository.reload_user(db, action.admin.user.id)
    if actor is None or not actor.is_active or not actor.is_admin:
        raise AdminRequired()
    target = await repository.reload_user_for_update(db, user_id)
    if target is None:
        raise UserNotFound()
    return target


async def _record(
    db: AsyncSession,
    action: AdminAction,
    event: AuditEvent,
    user_id: uuid.UUID,
    details: dict[str, object],
) -> None:
    await audit.record(
        db,
        event,
        ctx=action.ctx,
        user_id=user_id,
        actor_id=action.admin.user.id,
        session_id=action.admin.session.id,
        details=details,
    )

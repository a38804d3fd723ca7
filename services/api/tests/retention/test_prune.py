"""The retention pass: each kind of row is deleted once its retention period is over and not before, in
bounded batches; a used refresh token outlives nothing that reuse detection needs, and a login lock is
never pruned."""

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.account.models import AccountToken, TokenPurpose
from app.auth.models import AuthSession, RefreshToken
from app.clients.models import BUILTIN_CLIENT_ID, ClientSecret
from app.core.clock import ManualClock
from app.core.opaque_tokens import digest
from app.mail.models import OutboxMail
from app.oidc.models import AuthorizationCode
from app.ratelimit.models import LoginDevice, LoginThrottle, RateLimitHit
from app.retention import repository
from app.retention.service import prune
from app.sso.models import BrowserSession
from app.users.models import User
from tests.admin.helpers import admin_account
from tests.auth.helpers import refresh_grant, register, signed_up, tokens_of, unique_email
from tests.clients.helpers import basic, password_grant_as, refresh_grant_as, register_client
from tests.conftest import make_settings
from tests.oidc.helpers import authorized_code, code_flow_client, exchange, pkce_pair, signed_in_browser

DAY = timedelta(days=1)
SETTINGS = make_settings(
    SESSION_IDLE_TTL_SECONDS=7 * 86400,
    RETENTION_SESSIONS_SECONDS=7 * 86400,
    RETENTION_ACCOUNT_TOKENS_SECONDS=7 * 86400,
    RETENTION_AUTHORIZATION_CODES_SECONDS=86400,
    RETENTION_CLIENT_SECRETS_SECONDS=7 * 86400,
    RETENTION_LOGIN_THROTTLES_SECONDS=86400,
    RETENTION_MAIL_SECONDS=7 * 86400,
    LOGIN_DELAY_MAX_SECONDS=900,
    LOGIN_MAX_FAILURES=100,
)


async def a_user(db: AsyncSession) -> uuid.UUID:
    user = User(email=unique_email("retention"), password_hash="not-a-hash")
    db.add(user)
    await db.flush()
    return user.id


async def a_session(
    db: AsyncSession,
    user_id: uuid.UUID,
    *,
    created: datetime,
    last_used: datetime | None = None,
    revoked: datetime | None = None,
    absolute_ttl: timedelta = 30 * DAY,
    tokens: int = 2,
) -> uuid.UUID:
    """A session with `tokens` refresh tokens, all but the last one used."""
    auth_session = AuthSession(
        user_id=user_id,
        created_at=created,
        last_used_at=last_used or created,
        expires_at=created + absolute_ttl,
        revoked_at=revoked,
    )
    db.add(auth_session)
    await db.flush()
    for n in range(tokens):
        used = (last_used or created) if n < tokens - 1 else None
        db.add(
            RefreshToken(
                token_hash=uuid.uuid4().bytes * 2,
                session_id=auth_session.id,
                created_at=created,
                used_at=used,
            )
        )
    await db.flush()
    return auth_session.id


async def count(db: AsyncSession, statement: object) -> int:
    return int(await db.scalar(statement) or 0)  # type: ignore[call-overload]


async def sessions_left(db: AsyncSession, *ids: uuid.UUID) -> set[uuid.UUID]:
    db.expunge_all()
    return set((await db.scalars(select(AuthSession.id).where(AuthSession.id.in_(ids)))).all())


async def tokens_left(db: AsyncSession, *session_ids: uuid.UUID) -> int:
    return await count(
        db, select(func.count()).select_from(RefreshToken).where(RefreshToken.session_id.in_(session_ids))
    )


async def test_a_used_refresh_token_is_kept_while_its_session_can_still_be_refreshed_rfc_9700(
    client: httpx.AsyncClient,
    clock: ManualClock,
    db_session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Reuse detection (RFC 9700 §4.14) needs the used token: a pass run late in the session's life, long
    after the token was rotated, must leave it, so that its replay still revokes the session."""
    _, first = await signed_up(client)
    second = tokens_of(await refresh_grant(client, first.refresh))
    settings = make_settings(RETENTION_SESSIONS_SECONDS=0)  # no margin: only the session's life protects it
    for _ in range(4):  # four weeks of use, a refresh every six days: never idle, never past 30 days
        clock.advance(6 * DAY)
        second = tokens_of(await refresh_grant(client, second.refresh))
        await prune(test_sessionmaker, settings, clock.now())
    db_session.expunge_all()
    assert await db_session.get(RefreshToken, digest(first.refresh)) is not None, "the used token was pruned"

    replay = await refresh_grant(client, first.refresh)

    assert replay.status_code == 400
    assert (await refresh_grant(client, second.refresh)).status_code == 400, "the replay revoked the session"


async def test_dead_sessions_and_their_refresh_tokens_are_pruned_only_after_the_retention_margin(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    user = await a_user(db_session)
    live = await a_session(db_session, user, created=now - 20 * DAY, last_used=now - DAY)
    revoked_recently = await a_session(db_session, user, created=now - 10 * DAY, revoked=now - 6 * DAY)
    revoked_long_ago = await a_session(db_session, user, created=now - 10 * DAY, revoked=now - 8 * DAY)
    expired_recently = await a_session(db_session, user, created=now - 35 * DAY, last_used=now - 6 * DAY)
    expired_long_ago = await a_session(db_session, user, created=now - 40 * DAY, last_used=now - 9 * DAY)
    idle_recently = await a_session(db_session, user, created=now - 13 * DAY, last_used=now - 13 * DAY)
    idle_long_ago = await a_session(db_session, user, created=now - 15 * DAY, last_used=now - 15 * DAY)
    everything = (
        live,
        revoked_recently,
        revoked_long_ago,
        expired_recently,
        expired_long_ago,
        idle_recently,
        idle_long_ago,
    )

    deleted = await prune(test_sessionmaker, SETTINGS, now)

    kept = {live, revoked_recently, expired_recently, idle_recently}
    assert await sessions_left(db_session, *everything) == kept
    assert await tokens_left(db_session, *kept) == 2 * len(kept)
    assert await tokens_left(db_session, revoked_long_ago, expired_long_ago, idle_long_ago) == 0
    assert deleted["sessions"] >= 3 and deleted["refresh_tokens"] >= 6


async def test_expired_account_tokens_are_pruned_after_the_retention_margin(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    user = await a_user(db_session)
    expiries = {"live": now + DAY, "expired_recently": now - 6 * DAY, "expired_long_ago": now - 8 * DAY}
    hashes = {}
    for name, expires in expiries.items():
        hashes[name] = uuid.uuid4().bytes * 2
        db_session.add(
            AccountToken(
                token_hash=hashes[name],
                purpose=TokenPurpose.RESET_PASSWORD,
                user_id=user,
                email="someone@example.org",
                created_at=expires - DAY,
                expires_at=expires,
                used_at=expires - DAY if name == "expired_long_ago" else None,
            )
        )
    await db_session.flush()

    await prune(test_sessionmaker, SETTINGS, now)

    db_session.expunge_all()
    left = set(
        (await db_session.scalars(select(AccountToken.token_hash).where(AccountToken.user_id == user))).all()
    )
    assert left == {hashes["live"], hashes["expired_recently"]}


async def test_expired_device_tokens_are_pruned_and_live_ones_kept(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    user = await a_user(db_session)
    expiries = {"live": now + DAY, "expired": now - timedelta(seconds=1)}
    hashes = {name: uuid.uuid4().bytes * 2 for name in expiries}
    for name, expires in expiries.items():
        db_session.add(
            LoginDevice(token_hash=hashes[name], user_id=user, created_at=now - DAY, expires_at=expires)
        )
    await db_session.flush()

    await prune(test_sessionmaker, SETTINGS, now)

    db_session.expunge_all()
    left = set(
        (await db_session.scalars(select(LoginDevice.token_hash).where(LoginDevice.user_id == user))).all()
    )
    assert left == {hashes["live"]}


async def test_a_login_lock_is_never_pruned_and_a_counter_only_after_its_delay_and_retention(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    rows = {
        "locked_long_ago": (100, now - 365 * DAY),
        "delaying": (40, now - timedelta(minutes=10)),
        "quiet_for_hours": (40, now - timedelta(hours=20)),
        "quiet_for_days": (40, now - 2 * DAY),
        "one_failure_long_ago": (1, now - 2 * DAY),
    }
    emails = {name: unique_email(name) for name in rows}
    for name, (failures, last) in rows.items():
        db_session.add(LoginThrottle(email=emails[name], failures=failures, last_failure_at=last))
    await db_session.flush()

    await prune(test_sessionmaker, SETTINGS, now)

    db_session.expunge_all()
    left = set(
        (
            await db_session.scalars(
                select(LoginThrottle.email).where(LoginThrottle.email.in_(emails.values()))
            )
        ).all()
    )
    assert left == {emails["locked_long_ago"], emails["delaying"], emails["quiet_for_hours"]}


async def test_a_login_counter_is_kept_at_least_as_long_as_the_longest_delay(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A retention shorter than LOGIN_DELAY_MAX_SECONDS would end a running delay early: the delay wins."""
    now = datetime.now().astimezone()
    email = unique_email("delayed")
    db_session.add(LoginThrottle(email=email, failures=60, last_failure_at=now - timedelta(hours=2)))
    await db_session.flush()
    settings = make_settings(RETENTION_LOGIN_THROTTLES_SECONDS=0, LOGIN_DELAY_MAX_SECONDS=3 * 3600)

    await prune(test_sessionmaker, settings, now)
    db_session.expunge_all()
    assert await db_session.get(LoginThrottle, (email, "login")) is not None

    await prune(test_sessionmaker, settings, now + timedelta(hours=1, minutes=1))
    db_session.expunge_all()
    assert await db_session.get(LoginThrottle, (email, "login")) is None


async def test_rate_limit_windows_are_pruned_an_hour_after_they_start(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    key = f"retention-test:{uuid.uuid4().hex}"
    for minutes in (0, 59, 61, 600):
        db_session.add(RateLimitHit(key=key, window_start=now - timedelta(minutes=minutes), hits=3))
    await db_session.flush()

    await prune(test_sessionmaker, SETTINGS, now)

    db_session.expunge_all()
    left = (await db_session.scalars(select(RateLimitHit.window_start).where(RateLimitHit.key == key))).all()
    assert sorted(left) == [now - timedelta(minutes=59), now]


async def test_finished_mails_are_pruned_after_retention_and_pending_ones_are_kept(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    old = now - 8 * DAY
    recipient = unique_email("retention")
    mails = {
        "sent_long_ago": OutboxMail(sent_at=old, created_at=old),
        "failed_long_ago": OutboxMail(failed_at=old, created_at=old),
        "sent_recently": OutboxMail(sent_at=now - DAY, created_at=now - DAY),
        "pending_long_ago": OutboxMail(created_at=old),  # still retried: never pruned
    }
    for mail in mails.values():
        mail.id, mail.recipient, mail.subject, mail.body = uuid.uuid4(), recipient, "Hi", ""
        mail.next_attempt_at = mail.created_at
    db_session.add_all(mails.values())
    await db_session.flush()
    ids = {mail.id: name for name, mail in mails.items()}

    await prune(test_sessionmaker, SETTINGS, now)

    db_session.expunge_all()
    left = (await db_session.scalars(select(OutboxMail.id).where(OutboxMail.recipient == recipient))).all()
    assert sorted(ids[mail_id] for mail_id in left) == ["pending_long_ago", "sent_recently"]


async def test_pruning_deletes_in_bounded_batches(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    key = f"retention-batch:{uuid.uuid4().hex}"
    db_session.add_all(
        RateLimitHit(key=key, window_start=now - timedelta(hours=2, minutes=n), hits=1) for n in range(5)
    )
    await db_session.flush()
    # Only this test's windows are old enough for this cutoff… and anything older, so count ours.
    cutoff = now - timedelta(hours=1)
    ours = text("SELECT count(*) FROM rate_limit_hits WHERE key = :key")

    batches = []
    while True:
        async with test_sessionmaker.begin() as db:
            batches.append(await repository.delete_old_rate_limit_windows(db, cutoff=cutoff, batch=2))
        if batches[-1] < 2:
            break

    assert all(batch <= 2 for batch in batches)
    assert await db_session.scalar(ours, {"key": key}) == 0
    everything = await prune(test_sessionmaker, make_settings(RETENTION_BATCH_SIZE=2), now)
    assert everything["rate_limit_windows"] == 0, "a pass finds nothing left to do"


async def test_dead_sessions_with_more_tokens_than_a_batch_go_whole_batch_by_batch(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    user = await a_user(db_session)
    dead = [await a_session(db_session, user, created=now - 60 * DAY, tokens=7) for _ in range(5)]
    live = await a_session(db_session, user, created=now - DAY, tokens=7)
    settings = make_settings(RETENTION_BATCH_SIZE=2)

    deleted = await prune(test_sessionmaker, settings, now)

    assert await sessions_left(db_session, *dead, live) == {live}
    assert await tokens_left(db_session, *dead) == 0
    assert await tokens_left(db_session, live) == 7
    assert deleted["sessions"] >= 5 and deleted["refresh_tokens"] >= 35


async def test_dead_browser_sessions_are_pruned_after_the_retention_margin_and_live_ones_kept(
    db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now().astimezone()
    user = await a_user(db_session)
    margin = timedelta(seconds=SETTINGS.RETENTION_SESSIONS_SECONDS)
    idle = timedelta(seconds=SETTINGS.SSO_SESSION_IDLE_TTL_SECONDS)
    shapes = {
        "live": {"expires_at": now + DAY, "last_seen_at": now},
        "ended_recently": {
            "expires_at": now + DAY,
            "last_seen_at": now,
            "ended_at": now - timedelta(seconds=1),
        },
        "ended_long_ago": {"expires_at": now + DAY, "last_seen_at": now, "ended_at": now - margin - DAY},
        "expired_long_ago": {"expires_at": now - margin - DAY, "last_seen_at": now - margin - DAY},
        "idle_long_ago": {"expires_at": now + DAY, "last_seen_at": now - margin - idle - DAY},
    }
    ids = {}
    for name, shape in shapes.items():
        row = BrowserSession(
            user_id=user,
            token_hash=uuid.uuid4().bytes * 2,
            created_at=now - 2 * DAY,
            auth_time=now - 2 * DAY,
            amr=["pwd"],
            **shape,
        )
        db_session.add(row)
        await db_session.flush()
        ids[name] = row.id

    deleted = await prune(test_sessionmaker, SETTINGS, now)

    assert deleted["browser_sessions"] == 3
    db_session.expunge_all()
    left = set(
        (await db_session.scalars(select(BrowserSession.id).where(BrowserSession.user_id == user))).all()
    )
    assert left == {ids["live"], ids["ended_recently"]}


async def test_expired_authorization_codes_are_pruned_after_the_margin_unless_used_by_a_live_session(
    clock: ManualClock, db_session: AsyncSession, test_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Unused codes go a margin after they expire; a used one is kept while the session its exchange
    started exists (RFC 6749 §4.1.2: its replay must still end that session), and goes once it is gone."""
    now = clock.now()
    user = await a_user(db_session)
    margin = timedelta(seconds=SETTINGS.RETENTION_AUTHORIZATION_CODES_SECONDS)
    live_session = await a_session(db_session, user, created=now - DAY)
    hour = timedelta(hours=1)
    shapes: dict[str, dict[str, object]] = {
        "live": {"expires_at": now + timedelta(seconds=60)},
        "expired_recently": {"expires_at": now - margin + hour},
        "expired_long_ago": {"expires_at": now - margin - hour},
        "used_long_ago_session_alive": {
            "expires_at": now - 20 * DAY,
            "used_at": now - 20 * DAY - timedelta(seconds=30),
            "session_id": live_session,
        },
        # Its session was deleted by retention (the foreign key set session_id to NULL).
        "used_long_ago_session_gone": {
            "expires_at": now - 20 * DAY,
            "used_at": now - 20 * DAY - timedelta(seconds=30),
        },
    }
    ids = {}
    for name, shape in shapes.items():
        expires_at = shape["expires_at"]
        assert isinstance(expires_at, datetime)
        code = AuthorizationCode(
            code_hash=uuid.uuid4().bytes * 2,
            client_id=BUILTIN_CLIENT_ID,
            user_id=user,
            redirect_uri="https://app.example.com/callback",
            code_challenge="x" * 43,
            scopes=["openid"],
            auth_time=expires_at - timedelta(seconds=120),
            amr=["pwd"],
            created_at=expires_at - timedelta(seconds=60),
            **shape,
        )
        db_session.add(code)
        await db_session.flush()
        ids[name] = code.id

    deleted = await prune(test_sessionmaker, SETTINGS, now)

    assert deleted["authorization_codes"] >= 2
    db_session.expunge_all()
    ours = select(AuthorizationCode.id).where(AuthorizationCode.user_id == user)
    left = set((await db_session.scalars(ours)).all())
    assert left == {ids["live"], ids["expired_recently"], ids["used_long_ago_session_alive"]}


async def test_a_used_authorization_code_outlives_its_margin_so_a_replay_still_ends_its_session_rfc_6749(
    client: httpx.AsyncClient,
    clock: ManualClock,
    db_session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes what it issued. A pass run days after the exchange, with
    no margin at all, leaves the used code while its session lives; the replay then ends the session, and
    the code goes in the pass that deletes that session."""
    client_id = (await code_flow_client(client, db_session))["client_id"]
    await signed_in_browser(client)
    verifier, challenge = pkce_pair()
    code = await authorized_code(client, client_id, challenge)
    first = await exchange(client, client_id, code, verifier)
    assert first.status_code == 200, first.text
    settings = make_settings(RETENTION_AUTHORIZATION_CODES_SECONDS=0)

    clock.advance(2 * DAY)  # long expired (60 s), its session still refreshable (idle 7 days)
    await prune(test_sessionmaker, settings, clock.now())
    db_session.expunge_all()
    the_code = select(AuthorizationCode.id).where(AuthorizationCode.code_hash == digest(code))
    assert await db_session.scalar(the_code) is not None, "the used code was pruned"

    replay = await exchange(client, client_id, code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    refreshed = await refresh_grant_as(client, first.json()["refresh_token"], client_id=client_id)
    assert refreshed.json()["error"] == "invalid_grant", "the replay ended the session"

    clock.advance(timedelta(seconds=settings.RETENTION_SESSIONS_SECONDS) + DAY)
    deleted = await prune(test_sessionmaker, settings, clock.now())
    assert deleted["sessions"] >= 1
    db_session.expunge_all()
    assert await db_session.scalar(the_code) is None


async def test_client_secrets_are_pruned_after_their_rotation_overlap_and_the_retention_margin(
    client: httpx.AsyncClient,
    clock: ManualClock,
    db_session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The previous secret of a rotation is deleted once its overlap has ended and the margin passed; the
    current secret (no expiry) is never touched and keeps working."""
    admin = await admin_account(client, db_session)
    created = await register_client(client, admin, grant_types=["password", "refresh_token"])
    client_id = created["client_id"]
    rotated = await client.post(f"/admin/clients/{client_id}/secret", headers=admin.bearer)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    email = unique_email()
    await register(client, email)

    async def secrets_left() -> int:
        db_session.expunge_all()
        return await count(
            db_session,
            select(func.count()).select_from(ClientSecret).where(ClientSecret.client_id == client_id),
        )

    overlap = timedelta(seconds=SETTINGS.CLIENT_SECRET_ROTATION_OVERLAP_SECONDS)
    margin = timedelta(seconds=SETTINGS.RETENTION_CLIENT_SECRETS_SECONDS)
    clock.advance(overlap + margin - timedelta(hours=1))  # overlap over, margin not yet
    await prune(test_sessionmaker, SETTINGS, clock.now())
    assert await secrets_left() == 2

    clock.advance(timedelta(hours=2))
    deleted = await prune(test_sessionmaker, SETTINGS, clock.now())
    assert deleted["client_secrets"] >= 1
    assert await secrets_left() == 1
    assert (await password_grant_as(client, email, headers=basic(client_id, new))).status_code == 200

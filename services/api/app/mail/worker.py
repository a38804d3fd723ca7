"""The mail worker, `python -m app.mail.worker`: delivers the outbox.

The same chain as the API: settings → `build_engine` → `build_sessionmaker`. It polls every
MAIL_POLL_INTERVAL_SECONDS (1 s by default, and at once again after a full batch), so a queued mail goes
out within about a second; a poll is one indexed query, cheaper to keep correct than LISTEN/NOTIFY's
extra connection.

Each mail is delivered in its own transaction: the row is claimed with `SELECT … FOR UPDATE SKIP LOCKED
LIMIT 1` and stays locked while it is sent, so concurrent workers never send one mail twice; then it is
marked sent, rescheduled with exponential backoff and jitter, or marked failed (a 5xx refusal, or
MAIL_MAX_ATTEMPTS reached). A sent or failed mail has its body blanked in that same transaction; the row
itself is deleted RETENTION_MAIL_SECONDS later by the retention pass (`app.retention`), which this process
also runs, every RETENTION_INTERVAL_SECONDS. Delivery is at least once: if the worker dies between the
server's acceptance and the commit, that one mail is sent again, with the same Message-ID.

SIGTERM or SIGINT: the mail in flight (and the retention batch in flight) is finished and recorded, then
the process exits 0.
"""

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock, SystemClock
from app.core.config import Settings, get_settings
from app.core.database import DatabaseUnreachable, build_engine, build_sessionmaker, wait_for_database
from app.core.logging import configure_logging
from app.mail import healthcheck, repository
from app.mail.backends import (
    MailBackend,
    MailConfigurationError,
    PermanentDeliveryError,
    build_backend,
    describe_failure,
)
from app.mail.models import BLANKED_BODY, MAX_ERROR_LENGTH, OutboxMail
from app.mail.outbox import build_message, recipient_domain
from app.retention import service as retention

log = logging.getLogger("pyauth.mail")

# Failures that mean "the database is not there right now": logged in one line, then retried.
_DATABASE_DOWN = (DBAPIError, PoolTimeoutError, OSError, TimeoutError)
# Longest pause between polls while the database is unreachable.
_MAX_OUTAGE_DELAY_SECONDS = 10.0


def retry_delay(attempts: int, settings: Settings, rand: Callable[[], float] = random.random) -> timedelta:
    """Delay before the next try after `attempts` failed ones: MAIL_RETRY_BASE_SECONDS doubled per
    attempt, capped at MAIL_RETRY_MAX_SECONDS, then jittered into its upper half so that mails queued
    together during an outage do not all come back at once."""
    exponent = min(max(attempts - 1, 0), 64)
    ceiling = min(settings.MAIL_RETRY_MAX_SECONDS, settings.MAIL_RETRY_BASE_SECONDS * 2.0**exponent)
    return timedelta(seconds=ceiling * (0.5 + 0.5 * rand()))


def _record_attempt(
    mail: OutboxMail, failure: Exception | None, *, permanent: bool, settings: Settings, now: datetime
) -> None:
    """Mark the row sent, rescheduled or failed for good after one attempt."""
    mail.attempts += 1
    if failure is None:
        mail.sent_at = now
        mail.last_error = None
    else:
        mail.last_error = describe_failure(failure)[:MAX_ERROR_LENGTH]
        if permanent or mail.attempts >= settings.MAIL_MAX_ATTEMPTS:
            mail.failed_at = now
        else:
            mail.next_attempt_at = now + retry_delay(mail.attempts, settings)
    if mail.sent_at is not None or mail.failed_at is not None:
        # The body's links carry live single-use tokens: once the mail will never be sent again, no copy
        # of them stays in the database (a dump or a read-only role would otherwise hold them).
        mail.body = BLANKED_BODY
        mail.html_body = None


async def _deliver_one(
    sessionmaker: async_sessionmaker[AsyncSession], backend: MailBackend, settings: Settings, clock: Clock
) -> bool:
    """Claim, send and record one due mail in one transaction. False if none was due."""
    async with sessionmaker.begin() as session:
        mail = await repository.claim_next_due(session, clock.now())
        if mail is None:
            return False
        failure: Exception | None = None
        permanent = False
        try:
            message = build_message(mail, settings.MAIL_FROM)
        except ValueError as exc:  # a row that cannot become a message will never become one
            failure, permanent = exc, True
        else:
            try:
                await backend.send(message)
            except PermanentDeliveryError as exc:
                failure, permanent = exc, True
            except Exception as exc:  # any other failure is transient: the server, the network, TLS
                failure = exc

        _record_attempt(mail, failure, permanent=permanent, settings=settings, now=clock.now())
        outcome = (mail.id, mail.kind, recipient_domain(mail.recipient), mail.attempts, mail.next_attempt_at)

    # Logged after the commit, so the line is true. The domain only: never the local part or the body.
    mail_id, kind, domain, attempts, next_attempt_at = outcome
    extra = {"outbox_id": str(mail_id), "recipient_domain": domain, "mail_kind": kind, "attempt": attempts}
    kind = kind or "mail"
    if failure is None:
        log.info("%s %s sent to @%s, attempt %d", kind, mail_id, domain, attempts, extra=extra)
    elif permanent or attempts >= settings.MAIL_MAX_ATTEMPTS:
        reason = "refused by the server" if permanent else f"{attempts} attempts made"
        log.error(
            "%s %s to @%s failed for good, %s (%s); kept in the outbox",
            kind,
            mail_id,
            domain,
            reason,
            describe_failure(failure, with_reply=False),
            extra=extra,
        )
    else:
        log.warning(
            "%s %s to @%s not sent, attempt %d of %d (%s); next try at %s",
            kind,
            mail_id,
            domain,
            attempts,
            settings.MAIL_MAX_ATTEMPTS,
            describe_failure(failure, with_reply=False),
            next_attempt_at.isoformat(timespec="seconds"),
            extra=extra,
        )
    return True


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    backend: MailBackend,
    settings: Settings,
    clock: Clock,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[], None] | None = None,
) -> int:
    """Deliver up to MAIL_BATCH_SIZE due mails, one transaction each; return how many were handled
    (sent, rescheduled or failed). Stops early when `stop` is set, after the mail in flight."""
    handled = 0
    while handled < settings.MAIL_BATCH_SIZE and not (stop is not None and stop.is_set()):
        if not await _deliver_one(sessionmaker, backend, settings, clock):
            break
        handled += 1
        if on_progress is not None:
            on_progress()
    return handled


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    backend: MailBackend,
    settings: Settings,
    clock: Clock,
    *,
    stop: asyncio.Event,
    heartbeat_file: Path | None = None,
) -> None:
    """Poll and deliver until `stop` is set. The heartbeat is touched after every poll that reached the
    database and after every mail handled, never while the database is unreachable."""

    def beat() -> None:
        if heartbeat_file is not None:
            healthcheck.touch(heartbeat_file)

    outages = 0
    while not stop.is_set():
        try:
            handled = await deliver_due(sessionmaker, backend, settings, clock, stop=stop, on_progress=beat)
        except _DATABASE_DOWN as exc:
            outages += 1
            delay = min(settings.MAIL_POLL_INTERVAL_SECONDS * 2.0**outages, _MAX_OUTAGE_DELAY_SECONDS)
            log.warning("outbox unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
        except Exception:
            outages += 1
            delay = _MAX_OUTAGE_DELAY_SECONDS
            log.exception("delivery loop failed; retrying in %.1fs", delay)
        else:
            if outages:
                log.info("outbox reachable again")
            outages = 0
            beat()
            # A full batch means more may be due: look again at once.
            delay = 0.0 if handled >= settings.MAIL_BATCH_SIZE else settings.MAIL_POLL_INTERVAL_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


async def serve(settings: Settings, backend: MailBackend, heartbeat_file: Path) -> int:
    """The process: engine, database check, signal handlers, the loop; the exit status."""
    worker_settings = settings.model_copy(
        update={"DB_APPLICATION_NAME": f"{settings.DB_APPLICATION_NAME}-mail"}
    )
    engine = build_engine(worker_settings)
    try:
        try:
            await wait_for_database(engine, worker_settings)
        except DatabaseUnreachable as exc:
            log.error("%s", exc)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "mail worker started: backend %s, database %s, polling every %gs, pruning every %gs",
            settings.MAIL_BACKEND,
            settings.database_target,
            settings.MAIL_POLL_INTERVAL_SECONDS,
            settings.RETENTION_INTERVAL_SECONDS,
        )
        sessionmaker = build_sessionmaker(engine)
        # A task of its own: a long pass (a backlog after downtime) never holds up a mail.
        pruning = asyncio.create_task(retention.run(sessionmaker, settings, SystemClock(), stop=stop))
        try:
            await run(
                sessionmaker, backend, settings, SystemClock(), stop=stop, heartbeat_file=heartbeat_file
            )
        finally:
            stop.set()
            await pruning
        log.info("mail worker stopped")
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.mail.worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--heartbeat-file",
        type=Path,
        default=healthcheck.HEARTBEAT_FILE,
        help="touched on every healthy loop; see `python -m app.mail.healthcheck`",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        backend = build_backend(settings)
    except MailConfigurationError as exc:
        log.error("mail worker not started: %s", exc)
        return 2
    try:
        return asyncio.run(serve(settings, backend, args.heartbeat_file))
    finally:
        args.heartbeat_file.unlink(missing_ok=True)  # a stopped worker is not a healthy one


if __name__ == "__main__":
    sys.exit(main())

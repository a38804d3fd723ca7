"""The worker as a process: its loop delivers within about a second, its heartbeat tells the truth, and
SIGTERM lets the mail in flight finish before it exits 0."""

import asyncio
import inspect
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.clock import SystemClock
from app.core.config import Settings
from app.core.database import build_engine, build_sessionmaker
from app.health.service import SERVICE_ROOT
from app.mail import healthcheck
from app.mail.backends import SmtpBackend
from app.mail.models import OutboxMail
from app.mail.outbox import enqueue
from app.mail.worker import run
from app.ratelimit.models import RateLimitHit
from tests.conftest import TEST_KEY_ENCRYPTION_KEY, make_settings
from tests.mail.helpers import SmtpSink, address, outbox_row


async def wait_for(what: str, check: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> float:
    """Poll a predicate until it holds; the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_the_running_worker_delivers_a_new_mail_within_about_a_second(
    sessionmaker: async_sessionmaker[AsyncSession], sink: SmtpSink, mail_settings: Settings, tmp_path: Path
) -> None:
    heartbeat = tmp_path / "heartbeat"
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run(
            sessionmaker,
            SmtpBackend(mail_settings),
            mail_settings,
            SystemClock(),
            stop=stop,
            heartbeat_file=heartbeat,
        )
    )
    try:
        await wait_for("the first poll", heartbeat.exists)
        async with sessionmaker.begin() as session:
            mail_id = await enqueue(
                session, to=address(), subject="Hi", body="Hi.\n", now=SystemClock().now()
            )

        async def delivered() -> bool:
            return len(await sink.received()) == 1

        took = await wait_for("the delivery", delivered)
        assert took < 2.5, f"delivered after {took:.2f}s"
        assert healthcheck.main([str(heartbeat)]) == 0
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=5)
    assert (await outbox_row(sessionmaker, mail_id)).sent_at is not None


async def test_the_heartbeat_stops_while_the_database_is_unreachable(
    sink: SmtpSink, mail_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = make_settings(
        DATABASE_URL=f"postgresql+asyncpg://pyauth:pyauth@127.0.0.1:{closed_port}/nowhere_test",
        DB_POOL_TIMEOUT=1,
        MAIL_POLL_INTERVAL_SECONDS=0.1,
    )
    engine = build_engine(unreachable)
    heartbeat = tmp_path / "heartbeat"
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="pyauth.mail")
    worker = asyncio.create_task(
        run(
            build_sessionmaker(engine),
            SmtpBackend(mail_settings),
            unreachable,
            SystemClock(),
            stop=stop,
            heartbeat_file=heartbeat,
        )
    )
    try:

        def failed_polls() -> int:
            return sum("outbox unreachable" in record.getMessage() for record in caplog.records)

        # Three failed polls (retried after 0.1 s, then 0.2 s), not a fixed wait: the loop has lived
        # through two failures and goes on.
        await wait_for("three failed polls", lambda: failed_polls() >= 3)
        assert not worker.done(), "the loop outlives a database outage"
        assert not heartbeat.exists()
        assert healthcheck.main([str(heartbeat)]) == 1
        assert any("outbox unreachable" in record.getMessage() for record in caplog.records)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=5)
        await engine.dispose()


def test_the_healthcheck_fails_on_a_stale_or_missing_heartbeat(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    assert healthcheck.main([str(heartbeat)]) == 1
    heartbeat.touch()
    assert healthcheck.main([str(heartbeat)]) == 0
    old = time.time() - healthcheck.STALE_AFTER_SECONDS - 1
    os.utime(heartbeat, (old, old))
    assert healthcheck.main([str(heartbeat)]) == 1


def worker_environment(settings: Settings, **mail: object) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
        "KEY_ENCRYPTION_KEY": TEST_KEY_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "text",
        **{name: str(value) for name, value in mail.items()},
    }


async def start_worker(environment: dict[str, str], heartbeat: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.mail.worker",
        "--heartbeat-file",
        str(heartbeat),
        cwd=SERVICE_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigterm_lets_the_mail_in_flight_finish_then_the_worker_exits_0(
    sessionmaker: async_sessionmaker[AsyncSession], sink: SmtpSink, settings: Settings, tmp_path: Path
) -> None:
    async with sessionmaker.begin() as session:
        mail_id = await enqueue(session, to=address(), subject="Hi", body="Hi.\n", now=SystemClock().now())
    await sink.slow(2)
    heartbeat = tmp_path / "heartbeat"
    worker = await start_worker(worker_environment(settings, **sink.settings()), heartbeat)
    try:

        async def in_flight() -> bool:
            return bool((await sink.state())["in_flight"])

        await wait_for("the mail to be in flight", in_flight, within=20)
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=15)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    log = stderr.decode()
    assert worker.returncode == 0, log
    assert len(await sink.received()) == 1
    assert (await outbox_row(sessionmaker, mail_id)).sent_at is not None, "recorded before exiting"
    assert "mail worker stopped" in log
    assert not heartbeat.exists(), "a stopped worker leaves no heartbeat behind"


async def test_the_console_worker_prints_the_mail_and_its_link_to_stdout(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    link = "http://localhost:8000/auth/verify?token=console-" + "x" * 40
    async with sessionmaker.begin() as session:
        mail_id = await enqueue(
            session, to=address("erin"), subject="Confirm", body=f"Open:\n\n{link}\n", now=SystemClock().now()
        )
    worker = await start_worker(worker_environment(settings, MAIL_BACKEND="console"), tmp_path / "heartbeat")
    try:
        assert worker.stdout is not None
        printed = ""
        deadline = time.monotonic() + 20
        while link not in printed and time.monotonic() < deadline:
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=20)
            if not line:
                break
            printed += line.decode()
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=15)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    assert link in printed, stderr.decode()
    assert worker.returncode == 0
    assert (await outbox_row(sessionmaker, mail_id)).sent_at is not None
    assert link not in stderr.decode(), "the log lines never carry the body"


async def test_the_worker_process_prunes_expired_rows_on_its_schedule(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    """The retention pass runs inside the worker the compose file starts, at once and then every
    RETENTION_INTERVAL_SECONDS: an old rate-limit window and a mail sent long ago go, a pending mail stays."""
    now = SystemClock().now()
    window_key = f"worker-retention:{uuid.uuid4().hex}"
    async with sessionmaker.begin() as session:
        session.add(RateLimitHit(key=window_key, window_start=now - timedelta(hours=3), hits=1))
        old_mail = await enqueue(session, to=address(), subject="Hi", body="", now=now - timedelta(days=30))
        pending = await enqueue(
            session, to=address(), subject="Hi", body="Hi.\n", now=now + timedelta(days=1)
        )
        await session.execute(
            update(OutboxMail).where(OutboxMail.id == old_mail).values(sent_at=now - timedelta(days=30))
        )
    environment = worker_environment(settings, MAIL_BACKEND="console", RETENTION_INTERVAL_SECONDS=1)
    worker = await start_worker(environment, tmp_path / "heartbeat")
    try:

        async def pruned() -> bool:
            async with engine.connect() as connection:
                left = await connection.scalar(
                    select(func.count()).select_from(RateLimitHit).where(RateLimitHit.key == window_key)
                )
                mail_left = await connection.scalar(
                    select(func.count()).select_from(OutboxMail).where(OutboxMail.id == old_mail)
                )
            return left == 0 and mail_left == 0

        await wait_for("the retention pass", pruned, within=20)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=15)
    assert worker.returncode == 0, stderr.decode()
    assert "retention pass deleted" in stderr.decode()
    assert (await outbox_row(sessionmaker, pending)).sent_at is None, "a pending mail is never pruned"

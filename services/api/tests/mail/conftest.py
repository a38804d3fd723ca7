"""Fixtures for the mail tests: a real SMTP server (tests/mail/smtp_sink.py), an outbox that holds only
the test's own mails, and settings that point the SMTP backend at the server.

The server is the compose `smtp` service when SMTP_TEST_HOST is set (`make test`), and otherwise a
subprocess on 127.0.0.1 with free ports, started once per test session. Its TLS listeners present a
certificate of a private CA made at its start; `sink_ca_file` holds that CA for SMTP_TLS_CA_FILE.
"""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.database import build_sessionmaker
from app.health.service import SERVICE_ROOT
from app.mail.models import OutboxMail
from tests.conftest import make_settings, rows_set_aside
from tests.mail.helpers import SmtpSink


def shared_sink_host() -> str | None:
    """SMTP_TEST_HOST (`make test`: the compose `smtp` service) for one test process only. The mail tests
    reset, stop and reconfigure their sink, so under pytest-xdist every other worker starts a sink of its
    own (as a host run does): two workers never share one."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return None
    return os.environ.get("SMTP_TEST_HOST") or None


@pytest.fixture(scope="session")
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    host = shared_sink_host()
    if host:
        control_port = os.environ.get("SMTP_TEST_CONTROL_PORT", "8025")
        yield SmtpSink(
            host,
            int(os.environ.get("SMTP_TEST_PORT", "1025")),
            f"http://{host}:{control_port}",
            starttls_port=int(os.environ.get("SMTP_TEST_STARTTLS_PORT", "1587")),
            tls_port=int(os.environ.get("SMTP_TEST_TLS_PORT", "1465")),
        )
        return
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mail.smtp_sink",
        "--host",
        "127.0.0.1",
        "--smtp-port",
        "0",
        "--starttls-port",
        "0",
        "--tls-port",
        "0",
        "--control-port",
        "0",
        cwd=SERVICE_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
        assert line.startswith("ready "), f"the SMTP sink did not start: {line!r}"
        ports = dict(part.split("=") for part in line.split()[1:])
        yield SmtpSink(
            "127.0.0.1",
            int(ports["smtp"]),
            f"http://127.0.0.1:{ports['control']}",
            starttls_port=int(ports["starttls"]),
            tls_port=int(ports["tls"]),
        )
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


@pytest.fixture(scope="session")
async def sink_ca_file(smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test SMTP server's private CA, as a PEM file for SMTP_TLS_CA_FILE."""
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    path.write_text(await smtp_sink.ca_pem())
    return path


@pytest.fixture
async def sink(smtp_sink: SmtpSink) -> SmtpSink:
    """The SMTP server, accepting, up, and empty."""
    await smtp_sink.reset()
    return smtp_sink


@pytest.fixture(autouse=True)
async def outbox(engine: AsyncEngine) -> AsyncIterator[None]:
    """The mail tests commit for real, as the worker does: the outbox starts empty for them, and
    afterwards holds again exactly the rows it held before (other suites' live tests commit mail too)."""
    table = OutboxMail.__table__
    assert isinstance(table, Table)
    async with rows_set_aside(engine, table):
        yield


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The worker's session factory: real transactions on the test database."""
    return build_sessionmaker(engine)


@pytest.fixture
def mail_settings(sink: SmtpSink) -> Settings:
    return make_settings(
        **sink.settings(MAIL_RETRY_BASE_SECONDS=10, MAIL_RETRY_MAX_SECONDS=80, MAIL_MAX_ATTEMPTS=5)
    )

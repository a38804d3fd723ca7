"""A real SMTP server for the mail tests: aiosmtpd behind a listener this process controls, plus a small
HTTP control port to read what it received and to make it misbehave.

    python -m tests.mail.smtp_sink [--host H] [--smtp-port P] [--control-port C]

Port 0 picks a free port. When both listen, one line `ready smtp=<port> control=<port>` goes to stdout.
It runs as the `smtp` service of compose.test.yaml, and as a subprocess of the tests on the host.

Control (HTTP, JSON answers):
    GET  /health              200 {"status": "ok"}
    GET  /messages            the mails received: [{"mail_from", "rcpt_tos", "data", "login"}]
    GET  /state               {"mode", "refuse_code", "slow_seconds", "smtp_up", "sessions", "in_flight"}
    POST /reset               accept everything, listener up, messages and counters cleared
    POST /accept              accept every recipient
    POST /refuse/<code>       answer <code> (451 = try later, 550 = never) to every RCPT
    POST /slow/<seconds>      wait that long before answering DATA (a mail in flight)
    POST /down, POST /up      close / reopen the SMTP listener: connection refused in between

AUTH PLAIN/LOGIN is offered without TLS and accepts only LOGIN/PASSWORD below; the login a mail was sent
under is recorded with it.
"""

import argparse
import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOGIN = "pyauth-test"
PASSWORD = "sink-password-0123"  # a credential of this test server only
MAX_MESSAGES = 10_000


@dataclass
class SinkState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    refuse_code: int | None = None
    slow_seconds: float = 0.0
    sessions: int = 0
    in_flight: int = 0

    def reset(self) -> None:
        self.messages.clear()
        self.refuse_code = None
        self.slow_seconds = 0.0
        self.sessions = 0
        self.in_flight = 0


class SinkHandler:
    """aiosmtpd handler hooks: count sessions, refuse recipients on demand, keep every mail."""

    def __init__(self, state: SinkState) -> None:
        self.state = state

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.state.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self.state.sessions += 1
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        code = self.state.refuse_code
        if code is not None:
            if code >= 500:
                return f"{code} 5.1.1 <{address}>: mailbox unavailable"
            return f"{code} 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.state.in_flight += 1
        try:
            if self.state.slow_seconds:
                await asyncio.sleep(self.state.slow_seconds)
        finally:
            self.state.in_flight -= 1
        content = envelope.original_content or b""
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        if len(self.state.messages) < MAX_MESSAGES:
            self.state.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "data": content.decode("utf-8", "replace"),
                    "login": login,
                }
            )
        return "250 Message accepted for delivery"


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        LOGIN.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers a refusal with 535 itself.
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class Sink:
    def __init__(self, host: str, smtp_port: int) -> None:
        self.host = host
        self.smtp_port = smtp_port
        self.state = SinkState()
        self.handler = SinkHandler(self.state)
        self.server: asyncio.Server | None = None

    def _smtp(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname="sink.test",
            authenticator=authenticate,
            auth_require_tls=False,
            loop=asyncio.get_running_loop(),
        )

    async def up(self) -> None:
        if self.server is None:
            self.server = await asyncio.get_running_loop().create_server(
                self._smtp, self.host, self.smtp_port, reuse_address=True
            )
            self.smtp_port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def describe(self) -> dict[str, Any]:
        state = self.state
        return {
            "mode": "refuse" if state.refuse_code else "accept",
            "refuse_code": state.refuse_code,
            "slow_seconds": state.slow_seconds,
            "smtp_up": self.server is not None,
            "sessions": state.sessions,
            "in_flight": state.in_flight,
        }

    async def control(self, method: str, path: str) -> tuple[int, Any]:
        parts = [part for part in path.split("?", maxsplit=1)[0].split("/") if part]
        match method, parts:
            case "GET", ["health"]:
                return 200, {"status": "ok"}
            case "GET", ["messages"]:
                return 200, self.state.messages
            case "GET", ["state"]:
                return 200, self.describe()
            case "POST", ["reset"]:
                self.state.reset()
                await self.up()
            case "POST", ["accept"]:
                self.state.refuse_code = None
            case "POST", ["refuse", code] if code.isdigit() and 400 <= int(code) < 600:
                self.state.refuse_code = int(code)
            case "POST", ["slow", seconds]:
                self.state.slow_seconds = float(seconds)
            case "POST", ["down"]:
                await self.down()
            case "POST", ["up"]:
                await self.up()
            case _:
                return 404, {"error": "not_found"}
        return 200, self.describe()

    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()).strip():  # headers: not needed
                pass
            if len(request_line) < 2:
                status, body = 400, {"error": "bad_request"}
            else:
                status, body = await self.control(request_line[0].upper(), request_line[1])
            payload = json.dumps(body).encode()
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


async def main(host: str, smtp_port: int, control_port: int) -> None:
    # A fixed port even when 0 was asked for: /down then /up must reopen the same one.
    sink = Sink(host, smtp_port or _free_port(host))
    await sink.up()
    control = await asyncio.start_server(sink.serve_control, host, control_port, reuse_address=True)
    control_port = control.sockets[0].getsockname()[1]
    print(f"ready smtp={sink.smtp_port} control={control_port}", flush=True)
    async with control:
        await control.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tests.mail.smtp_sink", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--control-port", type=int, default=8025)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.smtp_port, args.control_port))

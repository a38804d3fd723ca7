"""A real SMTP server for the mail tests: aiosmtpd behind listeners this process controls, plus a small
HTTP control port to read what it received and to make it misbehave.

    python -m tests.mail.smtp_sink [--host H] [--smtp-port P] [--starttls-port S] [--tls-port T]
                                   [--control-port C]

Three SMTP listeners: plain SMTP (no STARTTLS offered), SMTP that requires STARTTLS, and implicit TLS.
The TLS ones present a server certificate made at start, signed by a private CA made at start too (with
`cryptography`), for the names localhost, smtp and sink.test and the loopback addresses: a client trusts
it only if it is given that CA. Port 0 picks a free port. When all listen, one line
`ready smtp=<port> starttls=<port> tls=<port> control=<port>` goes to stdout. It runs as the `smtp`
service of compose.test.yaml, and as a subprocess of the tests on the host.

Control (HTTP, JSON answers):
    GET  /health              200 {"status": "ok"}
    GET  /ca                  {"pem": the private CA's certificate, PEM}
    GET  /messages            the mails received: [{"mail_from", "rcpt_tos", "data", "login", "tls"}]
    GET  /state               {"mode", "refuse_code", "slow_seconds", "smtp_up", "sessions", "in_flight"}
    POST /reset               accept everything, listener up, messages and counters cleared
    POST /accept              accept every recipient
    POST /refuse/<code>       answer <code> (451 = try later, 550 = never) to every RCPT
    POST /slow/<seconds>      wait that long before answering DATA (a mail in flight)
    POST /down, POST /up      close / reopen the SMTP listeners: connection refused in between

AUTH PLAIN/LOGIN is offered without TLS and accepts only LOGIN/PASSWORD below; the login a mail was sent
under is recorded with it, and so is the TLS version it arrived over (`tls`, None for plain SMTP).
"""

import argparse
import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
        tls = server.transport.get_extra_info("ssl_object") if server.transport else None
        if len(self.state.messages) < MAX_MESSAGES:
            self.state.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "data": content.decode("utf-8", "replace"),
                    "login": login,
                    "tls": tls.version() if isinstance(tls, ssl.SSLObject) else None,
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


# The names the TLS listeners answer to: the host run's loopback, the compose service, the SMTP banner.
CERTIFICATE_NAMES = ("localhost", "smtp", "sink.test")
CERTIFICATE_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TestCertificates:
    """A private CA and a server certificate it signed, as PEM: made fresh at every start."""

    ca_pem: bytes
    server_pem: bytes
    server_key_pem: bytes


def make_certificates(extra_names: tuple[str, ...] = ()) -> TestCertificates:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyauth test SMTP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in (*CERTIFICATE_NAMES, *extra_names)]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in CERTIFICATE_ADDRESSES]
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return TestCertificates(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        server_pem=server.public_bytes(serialization.Encoding.PEM),
        server_key_pem=server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_tls_context(certificates: TestCertificates) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only; the key lives there for as long as it takes to load it.
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "server.pem"), Path(directory, "server.key")
        cert_file.write_bytes(certificates.server_pem)
        key_file.write_bytes(certificates.server_key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


class Sink:
    def __init__(self, host: str, smtp_port: int, starttls_port: int, tls_port: int) -> None:
        self.host = host
        self.ports = {"smtp": smtp_port, "starttls": starttls_port, "tls": tls_port}
        self.state = SinkState()
        self.handler = SinkHandler(self.state)
        self.certificates = make_certificates((socket.gethostname(),))
        self.tls_context = server_tls_context(self.certificates)
        self.servers: dict[str, asyncio.Server] = {}

    @property
    def smtp_port(self) -> int:
        return self.ports["smtp"]

    def _smtp(self, *, starttls: bool = False) -> SMTP:
        return SMTP(
            self.handler,
            hostname="sink.test",
            authenticator=authenticate,
            auth_require_tls=False,
            # Only the STARTTLS listener offers the upgrade, and requires it before MAIL.
            tls_context=self.tls_context if starttls else None,
            require_starttls=starttls,
            loop=asyncio.get_running_loop(),
        )

    async def up(self) -> None:
        loop = asyncio.get_running_loop()
        factories = {
            "smtp": (self._smtp, None),
            "starttls": (lambda: self._smtp(starttls=True), None),
            "tls": (self._smtp, self.tls_context),
        }
        for name, (factory, context) in factories.items():
            if name not in self.servers:
                server = await loop.create_server(
                    factory, self.host, self.ports[name], reuse_address=True, ssl=context
                )
                self.servers[name] = server
                self.ports[name] = server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()

    def describe(self) -> dict[str, Any]:
        state = self.state
        return {
            "mode": "refuse" if state.refuse_code else "accept",
            "refuse_code": state.refuse_code,
            "slow_seconds": state.slow_seconds,
            "smtp_up": bool(self.servers),
            "sessions": state.sessions,
            "in_flight": state.in_flight,
        }

    async def control(self, method: str, path: str) -> tuple[int, Any]:
        parts = [part for part in path.split("?", maxsplit=1)[0].split("/") if part]
        match method, parts:
            case "GET", ["health"]:
                return 200, {"status": "ok"}
            case "GET", ["ca"]:
                return 200, {"pem": self.certificates.ca_pem.decode()}
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


async def main(host: str, smtp_port: int, starttls_port: int, tls_port: int, control_port: int) -> None:
    # Fixed ports even when 0 was asked for: /down then /up must reopen the same ones.
    sink = Sink(
        host, smtp_port or _free_port(host), starttls_port or _free_port(host), tls_port or _free_port(host)
    )
    # A client that refuses the certificate (as the tests make it do) is expected here, not a fault to trace.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    await sink.up()
    control = await asyncio.start_server(sink.serve_control, host, control_port, reuse_address=True)
    control_port = control.sockets[0].getsockname()[1]
    ports = sink.ports
    print(
        f"ready smtp={ports['smtp']} starttls={ports['starttls']} tls={ports['tls']} control={control_port}",
        flush=True,
    )
    async with control:
        await control.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tests.mail.smtp_sink", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--starttls-port", type=int, default=1587)
    parser.add_argument("--tls-port", type=int, default=1465)
    parser.add_argument("--control-port", type=int, default=8025)
    args = parser.parse_args()
    asyncio.run(main(args.host, args.smtp_port, args.starttls_port, args.tls_port, args.control_port))

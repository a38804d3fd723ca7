"""HTTPS to the Swarm stack's edge proxy, as the scale check's clients: one request, its answer, and which
API task (`X-Served-By`: api1..apiN) served it.

By default each request has a connection of its own, so the proxy balances every request; `keep_alive`
keeps one connection per thread (what a busy client does, and cheaper for the load generator: no TLS
handshake per request). The certificate is checked against .swarm/edge.crt (`make swarm-up` made it).
"""

import http.client
import json
import os
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
EDGE_PORT = int(os.environ.get("EDGE_PORT", "8443"))
CA_FILE = ROOT / ".swarm" / "edge.crt"


@dataclass
class Reply:
    status: int
    body: Any
    served_by: str
    seconds: float

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None


class Edge:
    """Requests to https://localhost:EDGE_PORT; `served` counts the answers per API task, when set."""

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.tls = ssl.create_default_context(cafile=str(CA_FILE))
        self.keep_alive = keep_alive
        self.served: Counter[str] | None = None
        self._local = threading.local()
        self._count = threading.Lock()

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None or not self.keep_alive:
            connection = http.client.HTTPSConnection(
                "localhost", EDGE_PORT, context=self.tls, timeout=timeout
            )
            self._local.connection = connection
        connection.timeout = timeout
        return connection

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes, str]:
        """Status, body and X-Served-By; status 0 with the error as the body when there is no answer. A
        kept-alive connection the proxy closed while it was idle (`timeout http-keep-alive`) fails before
        the request is read: that one is sent again, once, on a new connection."""
        for attempt in (1, 2):
            reused = self.keep_alive and getattr(self._local, "connection", None) is not None
            connection = self._connection(timeout)
            broken = True
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                broken = response.will_close
                return response.status, raw, response.getheader("X-Served-By") or "-"
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                if not (reused and attempt == 1):
                    return 0, str(error).encode(), "-"
            except (OSError, http.client.HTTPException) as error:
                return 0, str(error).encode(), "-"
            finally:
                if broken or not self.keep_alive:
                    connection.close()
                    self._local.connection = None
        raise AssertionError("unreachable: the second attempt returns")

    def call(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        headers = {"Accept": "application/json"}
        body: bytes | None = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        status, raw, served_by = self._send(method, path, body, headers, timeout)
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")[:200]
        if self.served is not None and served_by != "-":
            with self._count:
                self.served[served_by] += 1
        return Reply(status, parsed, served_by, time.monotonic() - started)

    def register(self, email: str, password: str) -> Reply:
        return self.call("POST", "/auth/register", json_body={"email": email, "password": password})

    def login(self, email: str, password: str) -> Reply:
        form = {"grant_type": "password", "username": email, "password": password}
        return self.call("POST", "/auth/token", form=form)

    def refresh(self, refresh_token: str) -> Reply:
        return self.call(
            "POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def me(self, access_token: str, timeout: float = 30.0) -> Reply:
        return self.call("GET", "/users/me", token=access_token, timeout=timeout)

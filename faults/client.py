"""HTTP from the host to the faults stack's published API port, with the standard library only.

One connection per request, so that "a request in flight" is one request on one connection, and every
request has a timeout. A `Reply` records when it started and ended, and either the status and body or
the network error that took its place.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

GENERIC_503 = {
    "error": "service_unavailable",
    "detail": "The service is temporarily unavailable. Try again shortly.",
}


@dataclass(frozen=True)
class Reply:
    kind: str
    started: float  # time.time()
    finished: float
    status: int | None  # None: no HTTP answer at all (refused, reset, timed out)
    error: str | None = None  # the exception class when status is None
    body: Any = None  # parsed JSON when the answer is JSON, else the text
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def issued_token(self) -> bool:
        return self.status == 200 and bool(self.field("access_token"))

    @property
    def generic_503(self) -> bool:
        return self.status == 503 and self.body == GENERIC_503


class Api:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        kind: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        headers = {"Connection": "close", "User-Agent": "pyauth-faults"}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.time()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            answer_headers = {name.lower(): value for name, value in response.getheaders()}
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            return Reply(kind or path, started, time.time(), None, error=type(exc).__name__)
        finally:
            connection.close()
        parsed: Any = raw.decode("utf-8", "replace")
        if answer_headers.get("content-type", "").startswith("application/json") and raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        return Reply(kind or path, started, time.time(), status, body=parsed, headers=answer_headers)

    # -- the operations the checks use --------------------------------------------------------------

    def register(self, email: str, password: str) -> Reply:
        return self.call(
            "POST", "/auth/register", kind="register", json_body={"email": email, "password": password}
        )

    def login(
        self, email: str, password: str, timeout: float | None = None, device_token: str | None = None
    ) -> Reply:
        """The password grant; with `device_token`, as the client a successful login handed it to."""
        form = {"grant_type": "password", "username": email, "password": password}
        if device_token:
            form["device_token"] = device_token
        return self.call("POST", "/auth/token", kind="login", form=form, timeout=timeout)

    def refresh(self, refresh_token: str, timeout: float | None = None) -> Reply:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.call("POST", "/auth/token", kind="refresh", form=form, timeout=timeout)

    def me(self, access_token: str, timeout: float | None = None) -> Reply:
        return self.call("GET", "/users/me", kind="me", token=access_token, timeout=timeout)

    def logout(self, access_token: str) -> Reply:
        return self.call("POST", "/auth/logout", kind="logout", token=access_token)

    def revoke(self, refresh_token: str) -> Reply:
        return self.call("POST", "/auth/revoke", kind="revoke", form={"token": refresh_token})

    def live(self, timeout: float | None = None) -> Reply:
        return self.call("GET", "/health/live", kind="live", timeout=timeout)

    def ready(self, timeout: float | None = None) -> Reply:
        return self.call("GET", "/health/ready", kind="ready", timeout=timeout)


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    user_id: str
    access_token: str
    refresh_token: str
    session_id: str
    device_token: str | None = None  # from the login's answer, where the API hands one out


def session_id_of(access_token: str) -> str:
    """The `sid` claim, read without verifying: the checks compare it with the database."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


def create_account(api: Api, email: str, password: str) -> Account:
    registered = api.register(email, password)
    if registered.status != 201:
        raise RuntimeError(f"registering {email}: {registered.status} {registered.error or registered.body}")
    logged_in = api.login(email, password)
    if not logged_in.issued_token:
        raise RuntimeError(f"logging in {email}: {logged_in.status} {logged_in.error or logged_in.body}")
    access = str(logged_in.field("access_token"))
    return Account(
        email,
        password,
        str(registered.field("id")),
        access,
        str(logged_in.field("refresh_token")),
        session_id_of(access),
        str(logged_in.field("device_token")) if logged_in.field("device_token") else None,
    )


def in_parallel(calls: Iterable[Callable[[], Reply]], barrier: bool = True) -> list[Reply]:
    """Run the calls at once, each on its own thread, released together by a barrier."""
    tasks = list(calls)
    gate = threading.Barrier(len(tasks)) if barrier else None

    def run(task: Callable[[], Reply]) -> Reply:
        if gate is not None:
            gate.wait(timeout=30)
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


class Load:
    """Background load: each worker repeats its step until `stop()` or the deadline, recording replies."""

    def __init__(self, steps: list[Callable[[], Reply]], max_seconds: float, pause: float = 0.0) -> None:
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._pause = pause
        self._threads = [threading.Thread(target=self._loop, args=(step,), daemon=True) for step in steps]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _loop(self, step: Callable[[], Reply]) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            reply = step()
            with self._lock:
                self.replies.append(reply)
            # No answer (the API is restarting): back off a little instead of spinning on refused connections.
            pause = self._pause if reply.status is not None else max(self._pause, 0.1)
            if pause:
                self._stop.wait(pause)

    def snapshot(self) -> list[Reply]:
        with self._lock:
            return list(self.replies)

    def stop(self, join_timeout: float = 90.0) -> list[Reply]:
        self._stop.set()
        for thread in self._threads:
            thread.join(join_timeout)
        return self.snapshot()

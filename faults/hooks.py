"""schemathesis hooks for `make faults` (loaded through SCHEMATHESIS_HOOKS in compose.faults.yaml's `fuzz`).

The fuzzer is an administrator and reuses identifiers it saw in responses, the built-in client's `pyauth`
among them (GET /admin/clients lists it). A PATCH of that client that disables it or drops its password
grant is an administrator's legitimate choice (RFC 9700 advises dropping the grant), and it ends the very
logins the fuzzer's own credentials come from: every later operation then fails with an authentication
error instead of being tested. So the fuzzer's changes of a client go to any client but the built-in one;
taking the built-in client's password grant is tested in
tests/clients/test_client_authentication.py.
"""

from __future__ import annotations

from typing import Any

import schemathesis

BUILT_IN_CLIENT_ID = "pyauth"
# A client id no client is registered under (ids are [A-Za-z0-9_-]); the PATCH then answers 404.
SPARED_STAND_IN = "fuzz-spares-the-built-in-client"
CLIENT_PATH = "/admin/clients/{client_id}"


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """Send a PATCH of the built-in client to an unregistered client id instead."""
    operation = case.operation
    if (
        operation.method.upper() == "PATCH"
        and operation.path == CLIENT_PATH
        and (case.path_parameters or {}).get("client_id") == BUILT_IN_CLIENT_ID
    ):
        case.path_parameters = {**case.path_parameters, "client_id": SPARED_STAND_IN}

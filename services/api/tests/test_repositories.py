"""The SQL of admin, keys, ratelimit and mail lives in each package's `repository.py`; the key ring,
key storage and access-token issuing and verification are separate modules (issue 10, item 7)."""

import ast
import importlib
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
# What a module imports to write a statement: the builders and raw text.
SQL_BUILDERS = frozenset({"select", "update", "delete", "insert", "text", "exists", "func", "or_", "and_"})
MODULES_WITHOUT_SQL = [
    "admin/service.py",
    "keys/keyring.py",
    "keys/storage.py",
    "keys/tokens.py",
    "ratelimit/service.py",
    "ratelimit/devices.py",
    "mail/outbox.py",
    "mail/worker.py",
]


def _sql_builders_imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found |= {alias.name for alias in node.names} & SQL_BUILDERS
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "execute"
        ):
            found.add("execute")
    return found


@pytest.mark.parametrize("module", MODULES_WITHOUT_SQL)
def test_services_of_admin_keys_ratelimit_and_mail_leave_sql_to_their_repository(module: str) -> None:
    assert _sql_builders_imported(APP / module) == set()
    assert (APP / module.split("/", maxsplit=1)[0] / "repository.py").is_file()


def test_access_tokens_are_issued_next_to_the_grants_and_verified_in_keys() -> None:
    issuing = importlib.import_module("app.auth.issuing")
    tokens = importlib.import_module("app.keys.tokens")
    assert callable(issuing.issue_access_token)
    assert not hasattr(tokens, "issue_access_token")
    assert callable(tokens.verify_access_token)


def test_the_key_ring_holds_keys_in_memory_and_storage_writes_them() -> None:
    keyring = importlib.import_module("app.keys.keyring")
    storage = importlib.import_module("app.keys.storage")
    assert hasattr(keyring, "KeyRing")
    assert not hasattr(keyring, "public_jwk")
    assert callable(storage.rotate_signing_key)
    assert not hasattr(storage, "KeyRing")

"""The layering of `app/`, read from the imports (ast) of every module: which package may import which.

`ALLOWED` is the one table; the README's "Layers" section mirrors it and a test compares the two. Imports
inside functions count as well: a lazy import is still a dependency.
"""

import ast
import functools
import os
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
# `make test` mounts the repository's README into the test container and names it here.
README = Path(os.environ.get("PYAUTH_REPOSITORY_README", Path(__file__).resolve().parents[4] / "README.md"))

# Modules at the top of `app` that wire every domain together: they may import anything, nothing imports them.
ENTRY_POINTS = {"main", "models", "__main__"}

# What each package may import besides itself and `core`. `core` imports no domain; `admin` is imported by
# no domain; `users` is the user record and imports no other domain's rules. The only cycles left run
# through HTTP modules (`auth`'s register and logout-all routes use `account`; every package's routes use
# `auth`'s `CurrentAuth`): below them, the packages import each other without a cycle.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "passwords": set(),
    "keys": set(),
    "health": set(),
    "metrics": {"passwords"},
    "audit": {"auth"},
    "clients": {"audit"},
    "retention": {"auth"},
    "mail": {"retention"},
    "ratelimit": {"audit", "users"},
    "users": {"auth", "passwords"},
    "sso": set(),
    "auth": {
        "account",
        "audit",
        "clients",
        "keys",
        "metrics",
        "mfa",
        "oidc",
        "passwords",
        "ratelimit",
        "sso",
        "users",
    },
    "account": {"audit", "auth", "mail", "passwords", "ratelimit", "users"},
    "passkeys": {"account", "audit", "auth", "mail", "users"},
    "admin": {"account", "audit", "auth", "clients", "mfa", "passwords", "users"},
    "mfa": {"account", "audit", "auth", "clients", "keys", "mail", "passkeys", "ratelimit", "users"},
    "web": {
        "account",
        "audit",
        "auth",
        "clients",
        "metrics",
        "mfa",
        "oidc",
        "passkeys",
        "passwords",
        "ratelimit",
        "sso",
        "users",
    },
    "oauth": {"auth", "clients", "keys", "oidc", "ratelimit"},
    "oidc": {"auth", "clients", "keys", "users", "web"},
}

# A domain's repository is its own; only the user row's is shared (every domain loads users).
SHARED_REPOSITORIES = {"users"}

# The modules that speak HTTP: by name in every package, and these besides. Only they import a web framework,
# `app.core.dependencies` or another HTTP module; services, repositories and the rest take a
# `RequestContext` (`app.core.context`) and serve a request, the CLI and a background job alike.
HTTP_MODULE_NAMES = {"endpoints", "dependencies"}
HTTP_MODULES = {
    "app.main",
    "app.core.error_handlers",  # renders PyauthError and the framework's errors as JSON
    "app.core.edge",  # middleware: request id, guards, headers, metrics, log line
    "app.core.requests",  # the request id and log line, from a scope
    "app.core.exact_routes",  # middleware: the hot routes' dispatch
    "app.core.forms",  # reads a request's form
    "app.core.security",  # middleware
    "app.account.pages",
    "app.account.links",
    "app.admin.clients",  # the /admin/clients routes
    "app.auth.grants.registry",  # the token endpoint's form, derived from the grant table
    "app.web.pages",  # the hosted pages' rendering, cookies and headers
    "app.web.cookies",
    "app.web.security",  # the /account/security routes
    "app.metrics.listener",
    "app.metrics.requests",  # counts requests, from a scope
}
# Modules that others import and that hold one HTTP piece beside it: they may import the framework.
MIXED_MODULES = {
    "app.core.database",  # the engine chain; and get_db, the request's session
    "app.core.errors",  # PyauthError; and the Response named in RolledBackRefusal.answer
    "app.core.templating",  # the renderer
    "app.auth.device_cookie",  # the cookie's name (the password grant reads it); and setting it
}
WEB_FRAMEWORKS = ("fastapi", "starlette")


@functools.cache
def _parsed(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per run: the tests here read every module several times."""
    return ast.parse(path.read_text(), filename=str(path))


def _imports(path: Path) -> list[str]:
    """The `app.*` modules a file imports, as dotted names (`from app.x import y` gives `app.x.y` too, since
    `y` may be a module)."""
    found: list[str] = []
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports (`from app...`)"
            if node.module:
                found.append(node.module)
                found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name == "app" or name.startswith("app.")]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")


def _is_http_module(module: str) -> bool:
    return module in HTTP_MODULES or module.rsplit(".", 1)[-1] in HTTP_MODULE_NAMES


def _edges() -> list[tuple[str, str, str]]:
    """(importing package, imported module, file) for every import between `app` modules."""
    edges = []
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP).parts
        package = parts[0].removesuffix(".py")
        edges += [(package, module, str(path.relative_to(APP.parent))) for module in _imports(path)]
    return edges


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_core_imports_no_domain() -> None:
    wrong = [
        f"{file}: {module}"
        for package, module, file in _edges()
        if package == "core" and _package(module) not in (None, "core")
    ]
    assert wrong == []


def test_every_import_between_packages_is_in_the_layering_table() -> None:
    packages = {path.name for path in APP.iterdir() if (path / "__init__.py").exists()}
    assert packages == set(ALLOWED), "every package of app/ has a row in ALLOWED (and in the README)"
    wrong = []
    for package, module, file in _edges():
        target = _package(module)
        if package in ENTRY_POINTS or target is None or target in (package, "core"):
            continue
        if target in ENTRY_POINTS or target not in ALLOWED[package]:
            wrong.append(f"{file}: {package} -> {module}")
    assert wrong == []


def test_a_domain_repository_is_imported_only_by_its_domain() -> None:
    wrong = [
        f"{file}: {module}"
        for package, module, file in _edges()
        if module.split(".")[2:3] == ["repository"]
        and _package(module) not in (package, *SHARED_REPOSITORIES)
        and package not in ENTRY_POINTS
    ]
    assert wrong == []


def _readme_table() -> dict[str, set[str]]:
    section = README.read_text().split("### Layers", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|$", section, re.MULTILINE)
    return {package: set(re.findall(r"`(\w+)`", allowed)) for package, allowed in rows}


def test_the_readme_layering_section_matches_the_table() -> None:
    assert _readme_table() == ALLOWED


def test_every_import_the_table_allows_is_used() -> None:
    """The table states the layering as it is: a permission nothing uses is a layer that is not there."""
    used: dict[str, set[str]] = {package: set() for package in ALLOWED}
    for package, module, _ in _edges():
        target = _package(module)
        if package not in ENTRY_POINTS and target not in (None, package, "core"):
            used[package].add(str(target))
    assert used == ALLOWED


def test_below_the_http_modules_the_packages_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for package, module, file in _edges():
        target = _package(module)
        importer = _module(APP.parent / file)
        if package in ENTRY_POINTS or _is_http_module(importer) or target in (None, package, "core"):
            continue
        graph.setdefault(package, set()).add(str(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for step in graph.get(start, set()) - seen:
            if step == goal or reaches(step, goal, seen | {step}):
                return True
        return False

    assert sorted(package for package in graph if reaches(package, package, set())) == []


def test_services_import_no_http_module() -> None:
    """Issue 10 item 2: services take a `RequestContext`; no module but an HTTP one imports FastAPI,
    Starlette, `app.core.dependencies` or another package's endpoints or dependencies."""
    wrong = []
    for path in sorted(APP.rglob("*.py")):
        module = _module(path)
        if _is_http_module(module) or module in MIXED_MODULES:
            continue
        for name in _imports(path) + _framework_imports(path):
            if name.startswith(WEB_FRAMEWORKS) or (name.startswith("app.") and _is_http_module(name)):
                wrong.append(f"{module}: {name}")
    assert wrong == []


def _framework_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return [name for name in found if name.split(".")[0] in WEB_FRAMEWORKS]

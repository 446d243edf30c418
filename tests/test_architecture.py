"""The layout's rules of the house, checked on the source: they hold because a test fails
when they are broken, not because everyone remembers them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import authsvc

PACKAGE = Path(authsvc.__file__).parent
STORE = PACKAGE / "store"
BACKENDS = ("authsvc.store.sqlite", "authsvc.store.postgres")
DRIVERS = ("sqlite3", "asyncpg")

#: The pure rules, and the configuration model they read (the package's face included).
PURE = (
    "authsvc.rules",
    "authsvc.rules.decision",
    "authsvc.rules.delegation",
    "authsvc.rules.durations",
    "authsvc.rules.endpoints",
    "authsvc.rules.ipfilter",
    "authsvc.rules.policy",
    "authsvc.rules.ratelimit",
    "authsvc.rules.request",
    "authsvc.rules.tokens",
    "authsvc.config",
    "authsvc.config.errors",
    "authsvc.config.model",
)
#: What the pure modules may import: computation only, no I/O, no event loop.
PURE_STDLIB = frozenset(
    {
        "__future__",
        "collections",
        "collections.abc",
        "dataclasses",
        "datetime",
        "enum",
        "fractions",  # rate limits compare exactly (120/m equals 2/s)
        "functools",
        "hmac",
        "ipaddress",
        "re",
        "secrets",
        "string",
        "sys",
        "typing",
        "unicodedata",
        "urllib.parse",
        "zlib",
    }
)
#: Modules whose arrival in ``sys.modules`` means I/O, an event loop or a driver.
IMPURE = (
    "aiohttp",
    "asyncio",
    "asyncpg",
    "sqlite3",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "yaml",
    "prometheus_client",
    "pathlib",
    "tempfile",
    "shutil",
    "urllib.request",
    "http.client",
    "authsvc.store",
    "authsvc.service",
    "authsvc.web",
    "authsvc.config.load",
    "authsvc.cli",
)
#: Calls that read or write files, wherever they come from.
FILE_CALLS = frozenset(
    {"open", "read_text", "read_bytes", "write_text", "write_bytes", "stat", "exists"}
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_authsvc_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, except those under ``if TYPE_CHECKING:`` (imports for types only)."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at the top or inside a function."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            module = node.module
            if node.level:  # relative: resolve against the importing package
                base = module_name(path).split(".")
                package = base if path.name == "__init__.py" else base[:-1]
                module = ".".join([*package[: len(package) - node.level + 1], module])
            found.add(module)
            # ``from authsvc.store import sqlite`` imports the module authsvc.store.sqlite
            found.update(
                f"{module}.{alias.name}"
                for alias in node.names
                if is_authsvc_module(f"{module}.{alias.name}")
            )
    return found


def names_a(modules: set[str], targets: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == t or m.startswith(t + ".") for t in targets)}


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


class TestStoreIsSealed:
    """Nothing outside ``authsvc/store/`` knows which backend it talks to."""

    def test_no_module_outside_store_imports_a_backend_or_driver(self) -> None:
        """Only the store package names SQLite, PostgreSQL or their drivers."""
        offenders = {
            str(path.relative_to(PACKAGE)): sorted(names_a(imports_of(path), BACKENDS + DRIVERS))
            for path in sources()
            if STORE not in path.parents
        }
        assert {path: found for path, found in offenders.items() if found} == {}

    def test_the_scan_sees_the_backends_where_they_are(self) -> None:
        """The scan is not blind: inside store/ it finds both backends and both drivers."""
        inside = set().union(*(imports_of(p) for p in sources() if STORE in p.parents))
        assert names_a(inside, BACKENDS) >= {"authsvc.store.sqlite", "authsvc.store.postgres"}
        assert names_a(inside, DRIVERS) >= {"sqlite3", "asyncpg"}

    def test_only_the_factory_names_a_backend_outside_its_own_folder(self) -> None:
        """Within store/, one module, the package's ``open_store``, picks the backend."""
        naming = {
            str(path.relative_to(PACKAGE))
            for path in sources()
            if STORE in path.parents
            for backend in BACKENDS
            if names_a(imports_of(path), (backend,))
            and Path(PACKAGE.parent, *backend.split(".")) not in path.parents
        }
        assert naming == {"store/__init__.py"}


class TestRulesArePure:
    """The rules and the configuration model do no I/O and need no event loop."""

    @pytest.mark.parametrize("name", PURE)
    def test_imports_only_computation(self, name: str) -> None:
        """Each pure module imports only from the allow-list and from other pure modules."""
        path = PACKAGE.parent.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        imported = imports_of(path)
        not_pure = {m for m in imported if m.startswith("authsvc") and m not in PURE}
        foreign = {m for m in imported if not m.startswith("authsvc") and m not in PURE_STDLIB}
        assert (not_pure, foreign) == (set(), set())

    @pytest.mark.parametrize("name", PURE)
    def test_calls_no_file_functions(self, name: str) -> None:
        """No ``open()``, ``read_text()``, ``stat()``… in a pure module."""
        path = PACKAGE.parent.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
        }
        assert calls & FILE_CALLS == set()

    def test_importing_them_loads_nothing_impure(self) -> None:
        """In a fresh interpreter, importing every pure module brings in no I/O module."""
        script = (
            "import json, sys; before = set(sys.modules)\n"
            f"for name in {list(PURE)!r}: __import__(name)\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        loaded = set(json.loads(result.stdout))
        assert "authsvc.rules.decision" in loaded  # the probe imported what it should
        assert names_a(loaded, IMPURE) == set()

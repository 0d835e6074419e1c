"""The public surface: four namespaces, each name exported once and documented; an I/O-free core.

``presence_core`` is the client core, ``presence_core.server`` the server reducer,
``presence_core.testing`` the simulator and ``presence_core.client`` the async client.  Every
public object is defined in a private module (or the namespace itself) and exported by exactly
one namespace, so there is one import path for each name.  The one alias is
``presence_core.connect``, the client's entry point, which the core resolves lazily.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

import presence_core

CORE = pathlib.Path(presence_core.__file__).parent
FORBIDDEN = {"asyncio", "trio", "anyio", "socket", "time", "random", "secrets"}
# Adapter subpackages may do I/O; everything else is the sans-IO core.
ADAPTER_DIRS = {"client", "serve"}
ADAPTER_PACKAGES = tuple(f"presence_core.{name}" for name in sorted(ADAPTER_DIRS))
ADAPTER_SUBMODULES = tuple(f"{package}." for package in ADAPTER_PACKAGES)
# What an adapter brings in, and importing the core must not.
ADAPTER_ROOTS = {"asyncio", "trio", "anyio", "wsproto", "hypercorn", "rich"}
# Names the core resolves lazily from an adapter (PEP 562), with the namespace defining them.
LAZY = {("presence_core", "connect"): "presence_core.client"}


NAMESPACES = (
    "presence_core",
    "presence_core.server",
    "presence_core.testing",
    "presence_core.client",
)
SERVER_NAMES = (
    "Server",
    "ServerConfig",
    "ApiKey",
    "AccessToken",
    "Deliver",
    "Disconnect",
    "ServerOutput",
    "ServerCommand",
    "ServerConnectionState",
    "ServerConnectionInfo",
)


def _core_modules() -> list[pathlib.Path]:
    return [
        p
        for p in sorted(CORE.rglob("*.py"))
        if not ADAPTER_DIRS.intersection(p.relative_to(CORE).parts[:-1])
        and p.relative_to(CORE).parts[0] != "testing"
    ]


def _imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_no_io(path: pathlib.Path) -> None:
    """The core (server included) never imports asyncio, trio, anyio, socket, time, random or
    secrets: time and entropy are inputs, and I/O belongs to the embedder."""
    assert not (_imported_roots(path) & FORBIDDEN)


def test_forbidden_import_detector_catches_each_form(tmp_path: pathlib.Path) -> None:
    """The AST check itself sees plain, dotted and from-imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os, time\nimport asyncio.events\nfrom random import choice\n")
    assert _imported_roots(probe) & FORBIDDEN == {"time", "asyncio", "random"}


def test_core_modules_include_the_server() -> None:
    server = [p for p in _core_modules() if p.relative_to(CORE).parts[0] == "server"]
    assert CORE / "server" / "__init__.py" in server
    assert len(server) > 1


@pytest.mark.parametrize(
    "module_name",
    [*NAMESPACES, "presence_core.testing.strategies"],
)
def test_all_names_exist_once_and_are_documented(module_name: str) -> None:
    """Every public name, and every public method or property of a public class, has a doc."""
    module = importlib.import_module(module_name)
    names = module.__all__
    assert len(names) == len(set(names))
    for name in names:
        obj = getattr(module, name)
        if name == "__version__" or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        assert inspect.getdoc(obj), f"{name} has no docstring"
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if inspect.isfunction(value) or isinstance(value, property):
                    assert inspect.getdoc(value), f"{name}.{attr} has no docstring"


def _adapter_modules_after(statement: str) -> list[str]:
    """The adapter modules a fresh interpreter has loaded after running ``statement``."""
    code = (
        f"import sys; {statement}; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ADAPTER_ROOTS!r} "
        f"or m in {ADAPTER_PACKAGES!r} or m.startswith({ADAPTER_SUBMODULES!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded


def test_core_import_does_not_import_adapters() -> None:
    assert _adapter_modules_after("import presence_core, presence_core.server") == []


def test_adapter_import_detector_sees_the_client() -> None:
    """The check above fails when the core imports the client, eagerly or through connect."""
    assert "presence_core.client" in _adapter_modules_after("import presence_core.client")
    loaded = _adapter_modules_after("import presence_core; presence_core.connect")
    assert {"presence_core.client", "anyio", "wsproto"} <= set(loaded)


def _public(namespace: str) -> list[tuple[str, object]]:
    module = importlib.import_module(namespace)
    return [(name, getattr(module, name)) for name in module.__all__]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_name_in_all_exists(namespace: str) -> None:
    module = importlib.import_module(namespace)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_public_objects_come_from_private_modules_or_the_namespace(namespace: str) -> None:
    """A class or function is defined in the namespace or in one of its private modules
    (``presence_core._wire``, ``presence_core.server._auth``), never in another namespace."""
    misplaced = []
    for name, obj in _public(namespace):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if (namespace, name) in LAZY:
            continue
        source = obj.__module__
        rest = source.removeprefix(namespace + ".")
        if source != namespace and (rest == source or not rest.split(".")[0].startswith("_")):
            misplaced.append(f"{name} from {source}")
    assert not misplaced


def test_each_public_name_is_exported_by_exactly_one_namespace() -> None:
    """The core's classes are not re-exported by the server or testing namespaces."""
    where: dict[str, list[str]] = {}
    objects: dict[int, list[str]] = {}
    for namespace in NAMESPACES:
        for name, obj in _public(namespace):
            if (namespace, name) in LAZY:
                continue
            where.setdefault(name, []).append(namespace)
            # Small ints and strings may be shared by identity without being re-exports.
            if not isinstance(obj, int | str | float | bytes | type(None)):
                objects.setdefault(id(obj), []).append(f"{namespace}.{name}")
    assert not {name: spaces for name, spaces in where.items() if len(spaces) > 1}
    assert not [paths for paths in objects.values() if len(paths) > 1]


def test_core_namespace_exports_no_server_names() -> None:
    assert not set(SERVER_NAMES) & set(presence_core.__all__)
    assert not [name for name in SERVER_NAMES if name in vars(presence_core)]


def test_connect_is_the_clients_own_and_lazy() -> None:
    """``presence_core.connect`` is ``presence_core.client.connect``, listed in ``__all__``."""
    from presence_core import client  # noqa: PLC0415 - the import is what is tested

    for (namespace, name), source in LAZY.items():
        module = importlib.import_module(namespace)
        assert name in module.__all__
        assert name in dir(module)
        assert name not in vars(module)
        assert getattr(module, name) is getattr(importlib.import_module(source), name)
    assert client.connect is presence_core.connect


def test_server_reducer_is_imported_from_presence_core_server() -> None:
    from presence_core.server import Server  # noqa: PLC0415 - the import is what is tested

    server = importlib.import_module("presence_core.server")
    assert set(SERVER_NAMES) <= set(server.__all__)
    assert Server.__module__.startswith("presence_core.server._")

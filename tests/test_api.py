"""The public surface: one flat namespace, documented names, and an I/O-free core."""

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
ADAPTER_DIRS = {"aio", "adapters"}


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
    """decisions.md: the core never imports asyncio, trio, anyio, socket, time, random, secrets."""
    assert not (_imported_roots(path) & FORBIDDEN)


def test_forbidden_import_detector_catches_each_form(tmp_path: pathlib.Path) -> None:
    """The AST check itself sees plain, dotted and from-imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("import os, time\nimport asyncio.events\nfrom random import choice\n")
    assert _imported_roots(probe) & FORBIDDEN == {"time", "asyncio", "random"}


@pytest.mark.parametrize(
    "module_name",
    ["presence_core", "presence_core.testing", "presence_core.testing.strategies"],
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


def test_core_import_does_not_import_adapters() -> None:
    code = (
        "import sys, presence_core; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'asyncio','trio','anyio'} or m.startswith('presence_core.aio')]; "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

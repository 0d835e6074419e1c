"""The README's rule -> test table names tests that exist (so the table cannot rot silently)."""

from __future__ import annotations

import ast
import fnmatch
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
ABBREVIATIONS = {
    "M": "tests/test_presence_set_members.py",
    "S": "tests/test_presence_set_sync.py",
    "R": "tests/test_presence_set_reentry.py",
    "O": "tests/test_presence_set_ops.py",
    "T": "tests/test_presence_set_state.py",
    "F": "tests/test_presence_set_stateful.py",
}
REFERENCE = re.compile(r"(?:\b([MSROTF])|(tests/[\w/]+\.py))?::(test_[\w*]+)")


def _test_names(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _table_references() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Rule → test table") : text.index("## Out of scope\n")]
    refs: list[tuple[str, str]] = []
    for line in table.splitlines():
        current: str | None = None
        for abbreviation, path, name in REFERENCE.findall(line):
            if abbreviation:
                current = ABBREVIATIONS[abbreviation]
            elif path:
                current = path
            assert current is not None, f"reference without a file in: {line}"
            refs.append((current, name))
    return refs


def test_readme_rule_table_references_existing_tests() -> None:
    refs = _table_references()
    assert len(refs) > 100
    names: dict[str, set[str]] = {}
    missing = []
    for path, name in refs:
        if path not in names:
            names[path] = _test_names(ROOT / path)
        if not fnmatch.filter(names[path], name):
            missing.append(f"{path}::{name}")
    assert not missing, missing

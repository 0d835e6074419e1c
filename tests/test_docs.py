"""The user documentation stays true: README.md, docs/rules.md and benchmarks/README.md.

* docs/rules.md: every test its rule table and its departures name exists, every departure has
  its four parts, and every decision id cited anywhere in the code is defined there.
* README.md: its two commands are the ones that work (the test command is exactly the one CI
  runs), its Python examples run (the WebSocket one is checked against the API instead), and
  its links point at files that exist.
* None of the three cites an issue number or material outside the repository.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import inspect
import io
import pathlib
import re

import pytest

import presence_core
from tests.test_structure import prose_problems

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RULES = ROOT / "docs" / "rules.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
USER_DOCS = (README, RULES, BENCHMARKS)

# "- `M` = `tests/test_presence_set_members.py`": one abbreviation per line.
ABBREVIATION = re.compile(r"^- `([A-Z])` = `(tests/[\w/]+\.py)`$", re.MULTILINE)
# "M::test_x", "tests/test_api.py::test_x", or "::test_x" for the file named before it.
REFERENCE = re.compile(r"(?:\b([A-Z])|(tests/[\w/]+\.py))?::(test_[\w*]+)")
DECISION = re.compile(r"\bD(\d{1,2})\b")
PARTS = ("**Rule.**", "**Instead.**", "**Why.**", "**Test.**")


def _section(text: str, heading: str) -> str:
    """The text under a level-2 ``heading``, up to the next level-2 heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _rules() -> str:
    return RULES.read_text(encoding="utf-8")


def _references(text: str, abbreviations: dict[str, str]) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for line in text.splitlines():
        current: str | None = None
        for abbreviation, path, name in REFERENCE.findall(line):
            if abbreviation:
                current = abbreviations[abbreviation]
            elif path:
                current = path
            assert current is not None, f"reference without a file in: {line}"
            refs.append((current, name))
    return refs


def _missing_tests(refs: list[tuple[str, str]]) -> list[str]:
    names: dict[str, set[str]] = {}
    missing = []
    for path, name in refs:
        if path not in names:
            source = ROOT / path
            tree = ast.parse(source.read_text(encoding="utf-8")) if source.exists() else None
            names[path] = {
                node.name
                for node in (ast.walk(tree) if tree else ())
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            }
        if not fnmatch.filter(names[path], name):
            missing.append(f"{path}::{name}")
    return missing


def _abbreviations() -> dict[str, str]:
    return dict(ABBREVIATION.findall(_rules()))


def test_rule_table_references_existing_tests() -> None:
    refs = _references(_section(_rules(), "Rule → test table"), _abbreviations())
    assert len(refs) > 100
    assert not _missing_tests(refs)


def _departures() -> list[str]:
    section = _section(_rules(), "Departures from the specification")
    return section.split("\n### ")[1:]


def test_each_departure_names_rule_instead_why_and_existing_tests() -> None:
    entries = _departures()
    assert len(entries) >= 10
    for entry in entries:
        title = entry.splitlines()[0]
        assert all(part in entry for part in PARTS), title
        # The test list may wrap: one logical line, so "::name" continues the file before it.
        tests = " ".join(entry[entry.index("**Test.**") :].split())
        refs = _references(tests, _abbreviations())
        assert refs, title
        assert not _missing_tests(refs), title


def test_every_cited_decision_id_is_defined() -> None:
    """A docstring or test citing D4 points at a definition in docs/rules.md."""
    defined = set(re.findall(r"^\*\*D(\d{1,2})\.\*\*", _rules(), re.MULTILINE))
    cited: dict[str, str] = {}
    for folder in ("presence_core", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for number in DECISION.findall(path.read_text(encoding="utf-8")):
                cited.setdefault(number, path.relative_to(ROOT).as_posix())
    for doc in USER_DOCS:
        for number in DECISION.findall(doc.read_text(encoding="utf-8")):
            cited.setdefault(number, doc.relative_to(ROOT).as_posix())
    undefined = {f"D{number}": path for number, path in cited.items() if number not in defined}
    assert not undefined
    assert {"1", "4", "8", "10"} <= set(cited)


def test_rules_point_to_the_module_stating_the_reentry_rule() -> None:
    """The re-entry rule is stated once, in its module's docstring; docs/rules.md points there."""
    assert "presence_core/_own_members.py" in _rules()
    module = ROOT / "presence_core" / "_own_members.py"
    assert module.exists()
    assert "intent" in (ast.get_docstring(ast.parse(module.read_text(encoding="utf-8"))) or "")


# -- README ---------------------------------------------------------------------------------


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_gives_the_main_job_and_the_ci_test_command() -> None:
    readme = _readme()
    assert 'pip install ".[server]" && presence-core demo --duration 5' in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    tests = ci[ci.index('echo "== tests"') + 1 :]
    test_command = " && ".join(line for line in tests if line and not line.startswith("#"))
    assert test_command.startswith("coverage run -m pytest")
    assert f'pip install -e ".[dev]" && {test_command}\n' in readme


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def _runnable_blocks() -> list[str]:
    """The examples that run by themselves: not the embedding loop over a real socket, nor a
    client that stays connected until it is stopped."""
    return [
        block
        for block in _python_blocks(_readme())
        if "websockets" not in block and "sleep_forever" not in block
    ]


@pytest.mark.parametrize("block", _runnable_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_readme_example_runs(block: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})


def test_readme_has_an_example_per_reducer_and_they_are_run() -> None:
    runnable = "\n".join(_runnable_blocks())
    for needle in ("PresenceSet(", "Connection(", "from presence_core.server import"):
        assert needle in runnable, needle


def test_readme_websocket_example_matches_the_api() -> None:
    """The embedding loop needs a server to run; its calls are checked against the API."""
    (block,) = [block for block in _python_blocks(_readme()) if "websockets" in block]
    tree = ast.parse(block)
    connection = presence_core.Connection
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "pc"
        ):
            assert hasattr(presence_core, node.attr), node.attr
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "conn"
        ):
            method = getattr(connection, node.func.attr)
            keywords = {kw.arg: None for kw in node.keywords if kw.arg is not None}
            args = [None] * len(node.args)
            if isinstance(method, property):
                continue
            inspect.signature(method).bind(None, *args, **keywords)


def _links(text: str) -> list[str]:
    return [
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not target.startswith(("http://", "https://", "#"))
    ]


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_point_at_files_that_exist(doc: pathlib.Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = [link for link in _links(text) if not (doc.parent / link).exists()]
    assert not broken


def test_readme_points_to_what_comes_next() -> None:
    links = _links(_readme())
    assert {"docs/rules.md", "benchmarks/README.md"} <= set(links)
    assert "presence_core.testing" in _readme()


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_docs_cite_no_issue_and_nothing_outside_the_repository(doc: pathlib.Path) -> None:
    lines = enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1)
    problems = prose_problems(lines, doc.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)

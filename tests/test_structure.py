"""Structure limits and prose rules for the code: sizes, and what comments may say.

* Size: no class in presence_core/ is longer than 600 lines and no module longer than 1,000, so
  each module stays readable in one sitting.
* Prose: comments and docstrings in presence_core/, tests/ and benchmarks/ say why the code is
  as it is.  They cite Ably spec ids and our decision ids (docs/rules.md), never an issue
  number, the history of the design, or a document outside the repository, which a reader of
  the code does not have.

Comments are read with :mod:`tokenize` and docstrings with :mod:`ast`, so string literals in
code (such as the patterns below) are not prose.
"""

from __future__ import annotations

import ast
import io
import pathlib
import re
import tokenize
from collections.abc import Iterable, Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "presence_core"
MAX_CLASS_LINES = 600
MAX_MODULE_LINES = 1_000

# What prose must not say, with the reason shown when it does.
ISSUE_NUMBER = "an issue number (describe the bug class in words)"
HISTORY = "the history of the design (say why the code is as it is now)"
OUTSIDE = "material outside the repository (state the rule in the project's words)"
FORBIDDEN_PROSE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), why)
    for pattern, why in (
        (r"\bissues?\s*#?\s*\d+", ISSUE_NUMBER),
        (r"\bPR\s*#?\s*\d+", ISSUE_NUMBER),
        (r"[\w.-]+/[\w.-]+#\d+", ISSUE_NUMBER),
        (r"[A-Za-z][\w.-]*#\d+", ISSUE_NUMBER),
        (r"(?<![\w&])#\d+\b", ISSUE_NUMBER),
        (r"\bthe lead\b|\blead's\b", HISTORY),
        (r"\bfirst design\b|\boriginal design\b", HISTORY),
        (r"\b(?:previous|earlier|last|this) session\b", HISTORY),
        # The past-habit sense only: "is used to compute" is not history.
        (r"(?<!\bis )(?<!\bare )(?<!\bbe )(?<!\bbeen )(?<!\bwas )(?<!\bwere )\bused to\b", HISTORY),
        (r"\bformerly\b|\bstub-era\b|\bleft from when\b", HISTORY),
        (r"\.\./shared|shared/reference", OUTSIDE),
        (r"decisions\.md|DEVELOPERS\.md", OUTSIDE),
        (r"ably-presence-rules|ably-wire-interop|style-anchors|presence-landscape", OUTSIDE),
        (r"(?<![\w.-])notes/", OUTSIDE),
        # A section sign after "rules" or "interop" cites a reference document's section.
        (r"\b(?:rules|interop)\s*§", OUTSIDE),
    )
)
# "no longer" is deliberately not listed: in this code base it mostly describes runtime state
# ("a room that is no longer attached"), which is not history.


def _python_files(*folders: str) -> list[pathlib.Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


# -- size limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _python_files("presence_core"), ids=_rel)
def test_module_is_at_most_1000_lines(path: pathlib.Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_rel(path)} has {lines} lines"


@pytest.mark.parametrize("path", _python_files("presence_core"), ids=_rel)
def test_every_class_is_at_most_600_lines(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    too_long = [
        f"{_rel(path)}:{node.lineno} class {node.name}: {length} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_CLASS_LINES
    ]
    assert not too_long, too_long


# -- prose ------------------------------------------------------------------------------------


def prose(source: str) -> Iterator[tuple[int, str]]:
    """Yield (line, text) for every comment and docstring line of ``source``."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string.lstrip("#")
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not node.body:
            continue
        first = node.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            for offset, line in enumerate(first.value.value.splitlines()):
                yield first.lineno + offset, line


def prose_problems(lines: Iterable[tuple[int, str]], where: str) -> list[str]:
    """Every forbidden pattern in ``lines`` of prose, as ``where:line: reason: 'match'``."""
    problems = []
    for number, text in lines:
        for pattern, why in FORBIDDEN_PROSE:
            match = pattern.search(text)
            if match:
                problems.append(f"{where}:{number}: {why}: {match.group()!r}")
    return problems


def _file_prose_problems(path: pathlib.Path) -> list[str]:
    return prose_problems(prose(path.read_text(encoding="utf-8")), _rel(path))


@pytest.mark.parametrize("path", _python_files("presence_core", "tests", "benchmarks"), ids=_rel)
def test_comments_and_docstrings_cite_nothing_the_reader_lacks(path: pathlib.Path) -> None:
    problems = _file_prose_problems(path)
    assert not problems, "\n".join(problems)


def test_prose_detector_catches_each_form(tmp_path: pathlib.Path) -> None:
    """The detector reads comments and docstrings, not code, and knows each forbidden form."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Module doc: fixed in issue 5."""\n'
        "PATTERN = 'issue 7 decisions.md'  # a string literal in code is not prose\n"
        "\n"
        "\n"
        "def f() -> None:\n"
        '    """Function doc.\n'
        "\n"
        '    See ../shared/reference/x and ably-java#930."""\n'
        "    # The lead's first design used to retry (issue #12, owner/repo#3).\n"
        "    x = 1  # rules §4 item 34; notes/readme.md\n",
        encoding="utf-8",
    )
    found = _file_prose_problems(probe)
    lines = sorted({int(problem.split(":")[1]) for problem in found})
    assert lines == [1, 8, 9, 10]
    matched = " ".join(found).lower()
    for expected in (
        "issue 5",
        "../shared",
        "ably-java#930",
        "the lead",
        "first design",
        "used to",
        "issue #12",
        "owner/repo#3",
        "rules §",
        "notes/",
    ):
        assert repr(expected)[1:-1] in matched, expected
    assert "issue 7" not in matched


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("the key is used to sign the token", False),
        ("ids were used to compare", False),
        ("we used to compare ids", True),
        ("a room that is no longer attached", False),
        ("RTN15c7 and D10 are cited freely", False),
        ("see PR #147", True),
        ("PresenceMessage[3].timestamp", False),
    ],
)
def test_prose_patterns_spare_ordinary_sentences(text: str, flagged: bool) -> None:
    assert bool(prose_problems([(1, text)], "probe")) is flagged

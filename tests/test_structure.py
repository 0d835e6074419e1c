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
        (r"\b(?:previous|earlier|last|this) session\b", HISTORY),
        # The past-habit sense only: "is used to compute" is not history.
        (r"(?<!\bis )(?<!\bare )(?<!\bbe )(?<!\bbeen )(?<!\bwas )(?<!\bwere )\bused to\b", HISTORY),
        (r"\bformerly\b|\bleft from when\b", HISTORY),
        # A relative path that climbs out of the repository.
        (r"\.\./", OUTSIDE),
        # A section sign cites a section of some document; cite the rule id instead.
        (r"§", OUTSIDE),
    )
)
# "no longer" is deliberately not listed: in this code base it mostly describes runtime state
# ("a room that is no longer attached"), which is not history.

# A file that prose names must be in the repository: a path is read from the repository's
# root, a bare Markdown name may stand anywhere in it.
FILE_PATH = re.compile(r"(?<![\w./-])[A-Za-z_][\w.-]*(?:/[\w.-]+)+\.(?:py|md|toml|txt|json|rst)\b")
MARKDOWN_NAME = re.compile(r"(?<![\w./-])[\w-]+\.md\b")
MARKDOWN_IN_REPO = frozenset(p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts)


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
    """Every forbidden form in ``lines`` of prose, as ``where:line: reason: 'match'``."""
    problems = []
    for number, text in lines:
        for pattern, why in FORBIDDEN_PROSE:
            match = pattern.search(text)
            if match:
                problems.append(f"{where}:{number}: {why}: {match.group()!r}")
        for path in FILE_PATH.findall(text):
            if not (ROOT / path).exists():
                problems.append(f"{where}:{number}: {OUTSIDE}: {path!r}")
        for name in MARKDOWN_NAME.findall(text):
            if name not in MARKDOWN_IN_REPO:
                problems.append(f"{where}:{number}: {OUTSIDE}: {name!r}")
    return problems


def _file_prose_problems(path: pathlib.Path) -> list[str]:
    return prose_problems(prose(path.read_text(encoding="utf-8")), _rel(path))


@pytest.mark.parametrize("path", _python_files("presence_core", "tests", "benchmarks"), ids=_rel)
def test_comments_and_docstrings_cite_nothing_the_reader_lacks(path: pathlib.Path) -> None:
    problems = _file_prose_problems(path)
    assert not problems, "\n".join(problems)


def _forms() -> dict[str, str]:
    """Examples of each forbidden form, put together here so that this file, string literals
    included, never spells one out."""
    number, up, sign = "#", "..", chr(0xA7)
    return {
        "issue": "iss" + "ue 5",
        "issue_hash": "iss" + f"ue {number}12",
        "repo": f"owner/repo{number}3",
        "tracker": f"ably-java{number}930",
        "outside": f"{up}/elsewhere/x",
        "section": f"rules {sign}4",
        "missing_path": "nowhere/" + "readme.md",
        "missing_md": "no-such-" + "document.md",
    }


def test_prose_detector_catches_each_form(tmp_path: pathlib.Path) -> None:
    """The detector reads comments and docstrings, not code, and knows each forbidden form."""
    f = _forms()
    probe = tmp_path / "probe.py"
    probe.write_text(
        f'"""Module doc: fixed in {f["issue"]}."""\n'
        f"PATTERN = '{f['issue']} {f['missing_md']}'  # a string literal in code is not prose\n"
        "\n"
        "\n"
        "def f() -> None:\n"
        '    """Function doc.\n'
        "\n"
        f'    See {f["outside"]} and {f["tracker"]}."""\n'
        f"    # We used to retry ({f['issue_hash']}, {f['repo']}).\n"
        f"    x = 1  # {f['section']}; {f['missing_path']}; {f['missing_md']}\n",
        encoding="utf-8",
    )
    found = _file_prose_problems(probe)
    lines = sorted({int(problem.split(":")[1]) for problem in found})
    assert lines == [1, 8, 9, 10]
    matched = " ".join(found).lower()
    # The climbing path and the section sign are reported as the bare form they match.
    reported = {**f, "outside": "../", "section": chr(0xA7)}
    for expected in (*reported.values(), "used to"):
        assert expected in matched, expected


def test_prose_accepts_files_of_the_repository() -> None:
    assert not prose_problems([(1, "see docs/rules.md, README.md and tests/test_api.py")], "p")


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

"""Code-style rules that ruff has no rule for, checked over the same folders as `make lint`.

No backslash line continuations: a statement that spans lines is wrapped in brackets, where
a trailing space or a comment cannot break it and the formatter can re-flow it. (ruff's E502
only finds a backslash that is redundant inside brackets; nothing in ruff flags the others.)
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("src/aigc_chat", "tui", "backends", "gan", "tests", "bench")  # LINT_PATHS in the Makefile


def backslash_continuations(source: str) -> list[int]:
    """Line numbers that end in a backslash continuing the statement (not inside a string
    literal, where the backslash is the string's own, nor at the end of a comment)."""
    lines = source.splitlines()
    ending = {n for n, line in enumerate(lines, 1) if line.endswith("\\")}
    if not ending:
        return []
    excused: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.STRING:
            excused.update(range(tok.start[0], tok.end[0]))  # lines a multi-line string runs on past
        elif tok.type == tokenize.COMMENT:
            excused.add(tok.start[0])
    return sorted(ending - excused)


def test_the_finder_tells_a_continuation_from_a_string_or_a_comment() -> None:
    source = (
        'A = """\\\n'  # a string's own backslash: the newline is left out of the string
        'text"""\n'
        "b = 1 + \\\n"
        "    2\n"
        "# a comment \\\n"
        "c = (1 +\n"
        "     2)\n"
    )
    assert backslash_continuations(source) == [3]


def test_no_backslash_line_continuations() -> None:
    found = []
    for folder in FOLDERS:
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")) if folder != "src/aigc_chat" else sorted(base.glob("*.py")):
            for n in backslash_continuations(path.read_text(encoding="utf-8")):
                found.append(f"{path.relative_to(ROOT)}:{n}")
    assert not found, "wrap these lines in brackets instead of ending them with a backslash:\n  " + "\n  ".join(found)

"""Fenced code blocks of README.md and docs/*.md, with their ``doc-test`` markers.

A marker is an HTML comment (invisible on GitHub) that ends on the line right
before a fence and says how the block is tested::

    <!-- doc-test: bot needs-redis until="ready" -->

A marker may span several lines; the lines after the first are then Python that
the block needs but the reader does not (names a fragment uses, for instance)::

    <!-- doc-test: fragment
    from gateway_anyio import Cluster
    cluster: Cluster
    -->

CONTRIBUTING.md describes the kinds and options; :data:`KINDS` and :data:`OPTIONS`
are the ones this module accepts (anything else is an error, so a typo cannot
quietly turn a test off).
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The Markdown files whose blocks are tested.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: How a Python block is tested (no marker: ``run``).
KINDS = frozenset({"run", "bot", "fragment", "listing", "needs-redis"})
#: Options of a marker, ``key="value"``.
OPTIONS = frozenset({"until", "send", "module"})
#: Languages of fenced blocks, and what is done with them.
PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "bash", "console", "shell"})
NOT_CODE = frozenset({"text", "json", "jsonl", "toml", "ini", "yaml", "markdown", "md", ""})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[ \t]*$")
_MARKER_START = re.compile(r"^[ \t]*<!--[ \t]*doc-test:(?P<rest>.*)$")


class MarkerError(ValueError):
    """A ``doc-test`` marker that cannot be read (unknown kind, option, no fence...)."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its code and its marker."""

    path: Path
    line: int  # the first line of code (1-based), the fence is the line before
    lang: str
    code: str
    kinds: frozenset[str] = frozenset()
    options: dict[str, str] = field(default_factory=dict)
    prelude: str = ""

    @property
    def id(self) -> str:
        """``file:line``, relative to the repository."""
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def kind(self) -> str:
        """How the block is run: ``run``, ``bot``, ``fragment`` or ``listing``."""
        main = self.kinds - {"needs-redis"}
        return next(iter(main)) if main else "run"


def _parse_marker(lines: list[str], where: str) -> tuple[frozenset[str], dict[str, str], str]:
    first = _MARKER_START.match(lines[0])
    assert first is not None
    head = first.group("rest")
    body: list[str] = []
    if "-->" in head:
        head = head.split("-->", 1)[0]
    else:
        body = lines[1:-1]
        if lines[-1].strip() != "-->":
            raise MarkerError(f"{where}: a multi-line doc-test marker ends with a line '-->'")
    kinds: set[str] = set()
    options: dict[str, str] = {}
    for word in shlex.split(head):
        key, eq, value = word.partition("=")
        if eq:
            if key not in OPTIONS:
                raise MarkerError(f"{where}: unknown doc-test option {key!r} (known: {OPTIONS})")
            options[key] = value
        elif word in KINDS:
            kinds.add(word)
        else:
            raise MarkerError(f"{where}: unknown doc-test kind {word!r} (known: {sorted(KINDS)})")
    if len(kinds - {"needs-redis"}) > 1:
        raise MarkerError(f"{where}: at most one of run, bot, fragment, listing")
    if {"until", "send"} & set(options) and "bot" not in kinds:
        raise MarkerError(f"{where}: until= and send= apply to bot blocks only")
    if ("module" in options) != ("listing" in kinds):
        raise MarkerError(f"{where}: a listing names its module (module=...), and only a listing")
    return frozenset(kinds), options, textwrap.dedent("\n".join(body))


def _marker_before(lines: list[str], fence: int, where: str) -> list[str] | None:
    """The marker's lines if one ends on the line before ``fence`` (0-based)."""
    end = fence - 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None
    start = end
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0 or not _MARKER_START.match(lines[start]):
        return None
    return lines[start : end + 1]


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    used_markers: set[int] = set()
    inside: set[int] = set()  # lines of fenced blocks: a marker shown in one is text
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence, lang = match.group("indent", "fence", "lang")
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if end == len(lines):
            raise MarkerError(f"{path.name}:{i + 1}: this fence is never closed")
        code = "\n".join(
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[i + 1 : end]
        )
        where = f"{path.name}:{i + 1}"
        marker = _marker_before(lines, i, where)
        kinds: frozenset[str] = frozenset()
        options: dict[str, str] = {}
        prelude = ""
        if marker is not None:
            used_markers.add(i - len(marker))
            if lang not in PYTHON:
                raise MarkerError(f"{where}: doc-test markers apply to python blocks only")
            kinds, options, prelude = _parse_marker(marker, where)
        found.append(Block(path, i + 2, lang, code + "\n", kinds, options, prelude))
        inside.update(range(i, end + 1))
        i = end + 1
    for number, line in enumerate(lines):
        if _MARKER_START.match(line) and number not in used_markers | inside:
            raise MarkerError(
                f"{path.name}:{number + 1}: a doc-test marker not right before a fence"
            )
    return found


def all_blocks() -> list[Block]:
    """The blocks of every file in :data:`DOCUMENTS`."""
    return [block for path in DOCUMENTS for block in blocks_of(path)]

"""The payload types catch mistakes: mypy must report exactly the marked errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy comes with the dev extra")

ROOT = Path(__file__).resolve().parents[2]
MUST_FAIL = Path(__file__).parent / "must_fail" / "wrong_fields.py"
_MARK = re.compile(r"#\s*E:\s*([\w-]+)\s*$")
_ERROR = re.compile(r":(\d+): error: .*\[([\w-]+)\]$")


def _marked(path: Path) -> set[tuple[int, str]]:
    found = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _MARK.search(line)
        if match:
            found.add((number, match.group(1)))
    return found


def test_mypy_reports_every_marked_line_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # pyproject's mypy_path ("src") is relative to here
    stdout, stderr, status = mypy_api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", str(MUST_FAIL)]
    )
    assert stderr == ""
    reported = {
        (int(match.group(1)), match.group(2))
        for line in stdout.splitlines()
        if (match := _ERROR.search(line))
    }
    expected = _marked(MUST_FAIL)
    assert len(expected) >= 10, "the must-fail file lost its markers"
    assert status == 1
    assert reported == expected, stdout

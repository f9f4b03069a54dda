"""scripts/demo.sh installs only what the demo uses, a re-run skips pip, and it serves the page.

The script runs on a copy of the repository's packaging files, with a venv whose
``python`` records ``-m pip`` calls instead of making them (no network) and whose
``spectacles-gateway`` only echoes its arguments.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ._blocks import ROOT


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    for name in ("pyproject.toml", "setup.py", "scripts/demo.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "pip-calls"
    scripts = {
        "python": (
            '#!/usr/bin/env bash\nif [ "$1" = -m ] && [ "$2" = pip ]; then\n'
            f'    echo "$*" >>{log}; exit 0\nfi\nexec {sys.executable} "$@"\n'
        ),
        "spectacles-gateway": '#!/usr/bin/env bash\necho "ran: $*"\n',
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return tmp_path / "scripts" / "demo.sh", log


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VENV"}
    env["PYTHONPATH"] = str(ROOT / "src")  # the "installed" library the import check finds
    return subprocess.run(
        ["bash", str(script), *(args or ("--duration", "5"))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


#: What the demo adds: the status page on loopback, on a free port.
PAGE = "--status 127.0.0.1:0"


def test_demo_installs_only_the_status_extra_once_and_says_so(tmp_path: Path) -> None:
    script, log = _tree(tmp_path)
    first = _run(script)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"ran: listen {PAGE} --duration 5\n"
    assert "installing spectacles-gateway" in first.stderr  # it says what takes time
    calls = log.read_text().splitlines()
    assert len(calls) == 1
    # [status] is pure Python; no other extra (erlpack needs a C++ compiler).
    assert calls[0].endswith("install --disable-pip-version-check -e .[status]")

    again = _run(script)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"ran: listen {PAGE} --duration 5\n"
    assert again.stderr == ""
    assert len(log.read_text().splitlines()) == 1  # the re-run skipped pip

    with (tmp_path / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a changed dependency list\n")
    assert _run(script).returncode == 0
    assert len(log.read_text().splitlines()) == 2  # a changed pyproject.toml reinstalls


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--status", "off"), f"listen {PAGE} --status off"),
        (("--status=on", "--shards", "2"), f"listen {PAGE} --status=on --shards 2"),
        (("--status", "9000"), "listen --status 9000"),
        (("--status", "off", "--status=[::1]:0"), "listen --status off --status=[::1]:0"),
    ],
)
def test_demo_serves_the_page_unless_told_where(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    script, _ = _tree(tmp_path)
    result = _run(script, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ran: {expected}\n"

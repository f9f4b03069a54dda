"""Where the command line lives: on top of the import graph, and nothing points back.

``gateway_cli`` imports the drivers, the fake gateway and the Redis layer; none of
those (nor the core) may import it, not even lazily inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, TIMEOUT, clean_env

SRC = ROOT / "src"
LOWER = ["gateway_proto", "gateway_anyio", "gateway_sync", "gateway_testing", "gateway_redis"]


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_lower_package_imports_the_cli() -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for package in LOWER
        for path in sorted((SRC / package).rglob("*.py"))
        for name in _imported_modules(path)
        if name == "gateway_cli" or name.startswith("gateway_cli.")
    ]
    assert (SRC / "gateway_cli" / "run.py").is_file()
    assert offenders == []


def _python_m(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        env=clean_env({"PYTHONPATH": str(SRC)}),
        timeout=TIMEOUT,
        check=False,
    )


def test_python_dash_m_gateway_cli_runs_the_cli() -> None:
    result = _python_m("gateway_cli", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("spectacles-gateway ")


def test_python_dash_m_gateway_anyio_points_to_the_cli() -> None:
    result = _python_m("gateway_anyio", "listen")
    assert result.returncode == 2
    assert "python -m gateway_cli" in result.stderr
    assert "Traceback" not in result.stderr

"""gateway_proto stays sans-I/O: no module imports anything that does I/O or reads a clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway_proto

BANNED = {
    "socket",
    "ssl",
    "asyncio",
    "anyio",
    "trio",
    "threading",
    "time",
    "select",
    "selectors",
    "httpx",
}
PACKAGE = Path(gateway_proto.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_package_has_modules() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_io_imports(path: Path) -> None:
    roots = {name.split(".")[0] for name in _imports(path)}
    assert not roots & BANNED, f"{path.name} imports {sorted(roots & BANNED)}"


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_global_randomness(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "random":
            pytest.fail(f"{path.name} imports names from random (use an injected Random)")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr not in {"Random"}
        ):
            pytest.fail(f"{path.name} uses random.{node.attr} (use an injected Random)")


def test_the_checker_catches_a_banned_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom time import monotonic\nimport socket as s\n")
    assert {"time", "socket"} <= _imports(bad)

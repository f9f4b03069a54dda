"""The shape of the code: no import circle anywhere in ``src/``, no module too long.

The layers between packages are import-linter contracts in ``pyproject.toml``
(``lint-imports``), and so is ``acyclic_siblings``, which finds circles between the
modules of a package. It misses one kind: a circle through a package's
``__init__`` (a module that imports from its own package while the package's
``__init__`` imports that module), because it only compares a package's children.
This test builds the same graph with grimp (import-linter's engine, imports under
``if TYPE_CHECKING:`` included: they are arrows a reader follows too) and fails on
any module that can reach itself, printing the circle with the line of each import.

A module has one job, and one job rarely takes more than about 500 lines: a longer
module of ``src/`` or ``benchmarks/`` must say why it is one piece, in its docstring,
with the words "One piece" (as the generated ``_typed.py`` files do).
"""

from __future__ import annotations

import ast
import itertools
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _packages() -> list[str]:
    return sorted(p.parent.name for p in SRC.glob("*/__init__.py"))


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*_packages(), exclude_type_checking_imports=False, cache_dir=None)


def _arrow(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    where = "; ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
    return f"{importer} -> {imported}  ({where})"


def find_circles(graph: grimp.ImportGraph, packages: list[str]) -> list[list[str]]:
    """Each import circle through the modules of ``packages``, once, as its arrows."""
    seen: set[frozenset[str]] = set()
    circles: list[list[str]] = []
    for package in packages:
        for module in sorted(graph.find_descendants(package) | {package}):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                if back is None:
                    continue
                path = (module, *back)
                if frozenset(path) in seen:
                    continue
                seen.add(frozenset(path))
                circles.append([_arrow(graph, a, b) for a, b in itertools.pairwise(path)])
    return circles


def test_no_import_circle_in_src(graph: grimp.ImportGraph) -> None:
    circles = find_circles(graph, _packages())
    text = "\n\n".join("\n".join(arrows) for arrows in circles)
    assert not circles, f"import circles in src/ (break each by direction):\n\n{text}"


def test_the_check_sees_a_circle_through_a_package_init() -> None:
    # The kind acyclic_siblings misses: a submodule importing its own package.
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b"):
        graph.add_module(name)
    arrows = [("pkg", "pkg.a", ".a import A"), ("pkg.a", "pkg.b", ".b import B")]
    arrows.append(("pkg.b", "pkg", "pkg import A"))
    for line, (importer, imported, what) in enumerate(arrows, 1):
        graph.add_import(
            importer=importer, imported=imported, line_number=line, line_contents=f"from {what}"
        )
    circles = find_circles(graph, ["pkg"])
    assert circles == [
        [
            "pkg -> pkg.a  (line 1: from .a import A)",
            "pkg.a -> pkg.b  (line 2: from .b import B)",
            "pkg.b -> pkg  (line 3: from pkg import A)",
        ]
    ]


def test_the_circle_contract_covers_every_package_in_src() -> None:
    # acyclic_siblings names its packages; a package added to src/ must join it.
    if sys.version_info < (3, 11):
        pytest.skip("reads pyproject.toml with tomllib (3.11+, as import-linter itself does)")
    else:
        import tomllib

        text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        contracts = tomllib.loads(text)["tool"]["importlinter"]["contracts"]
        ancestors = [c["ancestors"] for c in contracts if c["type"] == "acyclic_siblings"]
        assert len(ancestors) == 1
        assert sorted(ancestors[0]) == _packages()


#: Lines past which a module must say why it is one piece.
LONG_MODULE = 500


def _long_modules_without_a_reason() -> list[str]:
    found = []
    for folder in (SRC, ROOT / "benchmarks"):
        for path in sorted(folder.rglob("*.py")):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue  # a virtual environment (benchmarks/.venv-peers), a cache
            text = path.read_text(encoding="utf-8")
            lines = text.count("\n")
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if lines > LONG_MODULE and "One piece" not in docstring:
                found.append(f"{path.relative_to(ROOT)}: {lines} lines")
    return found


def test_no_long_module_without_a_reason() -> None:
    long_modules = _long_modules_without_a_reason()
    assert not long_modules, (
        f"modules over {LONG_MODULE} lines whose docstring does not say why they are one"
        " piece (split them by job, or say 'One piece' and why):\n" + "\n".join(long_modules)
    )

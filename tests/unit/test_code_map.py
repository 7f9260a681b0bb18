"""The map of the code stays true: no import cycle among the project's packages, and
``docs/architecture.md`` names only files, functions and classes that exist.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: Import name → folder of each first-party package.
PACKAGES = {
    "srs_contracts": "srs_contracts",
    "agent_runtime": "agent_runtime",
    "srs_operator": "operator/srs_operator",
    "srs": "srs",
    "devstack": "devstack",
    "gitops": "gitops",
}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """First-party modules ``path`` imports anywhere (late imports count: they are a cycle too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield name if name in known else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_among_the_projects_packages() -> None:
    known = modules()
    graph = {name: {m for m in imports(path, known) if m in known and m != name} for name, path in known.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: `path/to/file.py` or `path/to/file.py:Name.attr` in backticks.
REFERENCE = re.compile(r"`([\w/.-]+\.py)(?::([\w.]+))?`")
#: Where a path in the document may be rooted (``srs_operator/…`` means ``operator/srs_operator/…``;
#: the runtime's and the contracts' paragraphs name modules inside their package too;
#: the operator's paragraphs name its layers without the package).
BASES = (ROOT, ROOT / "operator", ROOT / "operator" / "srs_operator", ROOT / "agent_runtime", ROOT / "srs_contracts")


def test_architecture_md_names_only_files_and_symbols_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path, symbol in REFERENCE.findall(text):
        file = next((base / path for base in BASES if (base / path).is_file()), None)
        if file is None:
            missing.append(path)
            continue
        source = file.read_text()
        for name in symbol.split(".") if symbol else ():
            if not re.search(rf"^\s*(?:async def|def|class) {name}\b|^\s*{name}\s*[:=]", source, re.M):
                missing.append(f"{path}:{symbol}")
                break
    assert missing == []

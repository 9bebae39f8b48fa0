"""The package's shape: small modules, no import cycle, no logging set-up in the library.

The import graph is read from the source (module-level and function-level imports alike), so a cycle hidden
behind a late ``import`` inside a function is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "hf_uniform"
MAX_LINES = 600


def module_files() -> dict[str, Path]:
    """``{"hf_uniform.x.y": path}`` for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        found = [target] + [f"{target}.{alias.name}" for alias in node.names]
    else:
        found = [alias.name for alias in node.names]
    return [t for t in found if t in known]


def import_graph() -> dict[str, set[str]]:
    """Edges ``module -> modules it imports`` inside the package (a submodule importing its own parent
    package is not an edge: the parent is initialised first by Python in any case)."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(name, path, node, set(files)):
                    if target != name and not name.startswith(target + "."):
                        graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_the_cycle_finder_finds_a_cycle_and_a_self_contained_dag():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "hf_uniform.engine.driver" in graph["hf_uniform.selection"]
    assert cycles(graph) == []


def test_no_module_is_longer_than_600_lines():
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in module_files().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_the_library_does_not_configure_logging():
    offenders = [name for name, path in module_files().items() if "basicConfig(" in path.read_text(encoding="utf-8")]
    assert offenders == []


def test_the_greedy_loop_exists_once():
    hits = [name for name, path in module_files().items() if "\ndef drive(" in path.read_text(encoding="utf-8")]
    assert hits == ["hf_uniform.engine.driver"]


def _layout_rows() -> dict[str, str]:
    """README's Layout table: ``{first path cell: whole row}``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return {line.split("|")[1]: line for line in section.splitlines() if line.startswith("| `")}


def test_the_readme_layout_table_matches_the_tree():
    rows = _layout_rows()
    cells = " ".join(rows)
    for entry in sorted(PACKAGE.iterdir()):
        if entry.name.startswith(("_", ".")) or entry.name == "__pycache__":
            continue
        shown = f"`hf_uniform/{entry.name}/`" if entry.is_dir() else f"hf_uniform/{entry.name}`"
        shown_short = f"`{entry.name}`"  # a module named after the first one in its cell: `hf_uniform/a.py`, `b.py`
        assert shown in cells or (entry.is_file() and shown_short in cells), f"README's Layout misses {entry.name}"
    for cell, row in rows.items():  # every submodule of a listed subpackage is named in its row
        if cell.strip().startswith("`hf_uniform/") and cell.strip().endswith("/`") and "," not in cell:
            folder = ROOT / cell.strip().strip("`")
            for module in sorted(folder.glob("*.py")):
                if module.stem != "__init__":
                    assert f"`{module.stem}`" in row, f"README's Layout row {cell.strip()} misses {module.stem}"
    for cell in rows:  # nothing listed that is not there (`hf_uniform/a.py`, `b.py`: b.py beside a.py)
        paths = [p.strip().strip("`") for p in cell.split(",")]
        base = (ROOT / paths[0]).parent
        assert (ROOT / paths[0]).exists(), f"README lists {paths[0]}"
        for path in paths[1:]:
            assert (ROOT / path).exists() or (base / path).exists(), f"README lists {path}"

"""The package's layering, read from the source with ``ast``: no import cycles; ``fields`` imports nothing of
``app`` or ``data``; ``data`` imports nothing of ``app`` and no network (of ``fields`` only the camera ray
geometry); only ``app`` composes.

Every import counts, including those inside functions (lazy imports hide cycles, they do not remove them);
imports under ``if TYPE_CHECKING:`` are annotations only and are skipped.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"app": "fieldforge.app", "fields": "fieldforge.fields", "data": "fieldforge.data"}
FORBIDDEN = {
    "fieldforge.fields": ("fieldforge.app", "fieldforge.data"),
    "fieldforge.data": ("fieldforge.app", "fieldforge.fields"),
}
ALLOWED = {"fieldforge.data": ("fieldforge.fields.rendering.rays",)}
"""Camera ray geometry (no parameters, no network) is shared by the procedural capture and the renderer."""


def module_files() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    out["fieldforge"] = ROOT / "src" / "fieldforge" / "__init__.py"
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``name`` imports (``from pkg import submodule`` counts as importing the submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t.startswith("fieldforge") and t != name:
                found.add(t)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_sources_are_found(graph: dict[str, set[str]]) -> None:
    assert {"fieldforge.app.cli", "fieldforge.fields.field", "fieldforge.data.images", "fieldforge.app.tasks.image"} <= set(graph)
    assert "fieldforge.fields.field" in graph["fieldforge.app.tasks.image"]


def test_layering(graph: dict[str, set[str]]) -> None:
    violations = [
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        for layer, banned in FORBIDDEN.items()
        if mod == layer or mod.startswith(layer + ".")
        for dep in deps
        if dep.startswith(banned) and not dep.startswith(ALLOWED.get(layer, ("-",)))
    ]
    assert not violations, "\n".join(violations)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or ``None``."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is how packages re-export: not a cycle edge
            if dep.startswith(node + "."):
                continue
            if colour.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if colour.get(dep) is None and (cycle := visit(dep)):
                return cycle
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour.get(node) is None and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"p": {"p.x"}, "p.x": set()}) is None


def test_only_fieldforge_is_installed() -> None:
    """pyproject maps the three folders under one package (nothing named app/fields/data in site-packages)."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "fieldforge" or p.startswith("fieldforge.") for p in setuptools["packages"])
    listed = set(setuptools["packages"])
    for folder, package in PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            sub = ".".join([package, *init.parent.relative_to(ROOT / folder).parts])
            assert sub in listed, f"{sub} is not listed in pyproject's packages (it would not be installed)"

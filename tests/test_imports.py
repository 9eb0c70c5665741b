"""The package has no import cycle (issue 18 part 3): a static analysis of the import statements of na_cuda/.

What counts as an edge ``a -> b``: every ``import`` / ``from ... import`` statement of module ``a`` that names a
module ``b`` of the package, at any nesting level, so a function-level ("lazy") import counts like a top-level one:
it hides a cycle rather than breaking it. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg`` itself. Not counted: the implicit import of the parent packages (importing
``na_cuda.train.loop`` runs ``na_cuda/__init__.py`` first; every module would otherwise be in a cycle with the
package), imports under ``if TYPE_CHECKING:`` (never executed), and imports inside a module-level ``__getattr__``
(PEP 562: it runs when the attribute is first read, after both modules finished importing, so it cannot see a
half-initialised module; ``na_cuda.nn.convert`` is such an alias of ``na_cuda.convert.convert``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "na_cuda"


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (the package directory)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module at any depth, without TYPE_CHECKING blocks and module __getattr__."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), False)
            elif top and isinstance(child, ast.FunctionDef) and child.name == "__getattr__":
                continue
            else:
                visit(child, False)

    visit(tree, True)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (see the module docstring for what counts). The compiled libraries
    are no modules: na_cuda/_backend.py loads them by path (torch.ops.load_library)."""
    sources = _modules(root)
    modules = set(sources)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in sources.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = []
                for alias in node.names:
                    sub = f"{mod}.{alias.name}"
                    targets.append(sub if sub in modules else mod)
            for t in targets:
                # `import a.b.c` names a.b.c; keep the longest prefix that is a module of the package
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> ... -> a) per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    out = []
    for comp in components:
        members, start = set(comp), min(comp)
        path, seen = [start], {start}
        while True:  # walk inside the component back to the start
            nxt = sorted(w for w in graph[path[-1]] if w in members)
            back = [w for w in nxt if w == start]
            if back and len(path) > 1:
                out.append(path + [start])
                break
            step = next((w for w in nxt if w not in seen), start)
            if step == start:
                out.append(path + [start])
                break
            path.append(step)
            seen.add(step)
    return out


def test_na_cuda_has_no_import_cycle():
    found = cycles(import_graph(PACKAGE))
    assert found == [], "import cycles in na_cuda/:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_bottom_floor_imports_nothing_above_it():
    """params, surrogates and rules import nothing else of the package; the reference depends on them."""
    graph = import_graph(PACKAGE)
    assert graph["na_cuda._backend"] == set()  # the compiled libraries are loaded by path, not imported
    assert graph["na_cuda.params"] == set()
    assert graph["na_cuda.surrogates"] == set()
    assert graph["na_cuda.rules"] == {"na_cuda.params", "na_cuda.surrogates"}
    assert "na_cuda.rules" in graph["na_cuda.reference._rules"]
    assert "na_cuda.nn" in graph["na_cuda.convert"] and "na_cuda.convert" not in graph["na_cuda.nn"]


def test_the_analysis_finds_cycles(tmp_path):
    """A planted package: a lazy (function-level) import closes a cycle; a relative one closes another."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("x = 1\ndef f():\n    from . import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from ..sub import d\n")
    (pkg / "sub" / "d.py").write_text("import pkg.sub.c\n")
    (pkg / "e.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
        "def __getattr__(name):\n    from . import a\n    return a\n"
    )
    graph = import_graph(pkg)
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.e"] == set()
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.sub.c", "pkg.sub.d", "pkg.sub.c"]]


def test_public_aliases_still_work():
    import na_cuda
    from na_cuda import convert as convert_module
    from na_cuda.nn import convert

    assert convert is convert_module.convert is na_cuda.nn.convert
    assert na_cuda.reference.SURROGATE_DEFAULT_ALPHA is na_cuda.rules.SURROGATE_DEFAULT_ALPHA


CORE = ("na_cuda.ops", "na_cuda.functional", "na_cuda.nn", "na_cuda.convert", "na_cuda.reference")
APPLICATIONS = ("na_cuda.train", "na_cuda.data", "na_cuda.experiments")


def test_the_core_never_imports_the_applications():
    """The op, the modules, the converter and the reference stand without the training CLI, the datasets and the
    experiments (which import the core, never the reverse); lazy imports count, transitively."""
    graph = import_graph(PACKAGE)
    for root in CORE:
        seen, todo = set(), [m for m in graph if m == root or m.startswith(root + ".")]
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
        bad = sorted(m for m in seen if m.startswith(APPLICATIONS))
        assert bad == [], f"{root} imports {bad}"

"""The library's shape stays readable: sub-packages import only the ones before them in the
pipeline, the import graph has no cycle (type-only imports included) and its runtime part at
most 8 levels, and no module or function grows past what a reader takes in at once (README,
"How the code is laid out")."""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).parents[1] / "circuitmap"
ORDER = [
    "errors",
    "config",
    "progress",
    "files",
    "graph",
    "model",
    "sae",
    "method",
    "circuit",
    "mapping",
    "validate",
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(path: Path, typing: bool = False) -> set[str]:
    """Modules ``path`` imports outside ``if TYPE_CHECKING:`` blocks (function bodies count);
    with ``typing``, those inside them too."""
    tree = ast.parse(path.read_text())
    typing_only = (
        set()
        if typing
        else {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
    )
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and id(node) not in typing_only and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import) and id(node) not in typing_only:
            names |= {a.name for a in node.names}
    return names


def _graph(typing: bool = False) -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for imported in _runtime_imports(path, typing) & set(modules):
            if imported != name:
                graph.add_edge(name, imported)
    return graph


def _stage(module: str) -> int:
    return ORDER.index(module.split(".")[1]) if "." in module else -1


def test_import_graph_is_acyclic_shallow_and_follows_the_pipeline():
    graph = _graph()
    assert nx.is_directed_acyclic_graph(graph), list(nx.simple_cycles(graph))[:3]
    longest = nx.dag_longest_path(graph)
    assert len(longest) <= 8, " -> ".join(longest)
    backwards = [
        (u, v) for u, v in graph.edges if _stage(v) > _stage(u) and _stage(u) >= 0
    ]  # a sub-package importing one listed after it
    assert not backwards, backwards


def test_no_cycle_even_through_type_only_imports():
    graph = _graph(typing=True)
    assert nx.is_directed_acyclic_graph(graph), list(nx.simple_cycles(graph))[:3]


def test_the_graph_package_needs_neither_torch_nor_the_model():
    """graph/ (and the run-folder reading that ``circuitmap export`` uses) import no module that
    imports torch: a graph is built, pruned, exported and drawn without the model."""
    graph = _graph()
    torch_free = [n for n in graph if n.startswith("circuitmap.graph")]
    torch_free += ["circuitmap.mapping.exports", "circuitmap.mapping.folder"]
    heavy = {"torch", "transformers", "sae_lens", "safetensors", "datasets"}
    for name in torch_free:
        for module in nx.descendants(graph, name) | {name}:
            found = {m.split(".")[0] for m in _runtime_imports(_modules()[module])} & heavy
            assert not found, f"{name} imports {found} through {module}"


def test_no_module_over_300_lines_and_no_function_over_80():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > 300:
            too_long.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > 80:
                    too_long.append(f"{name}.{node.name}")
    assert not too_long, too_long

"""The import graph, parsed from the source: lower layers never import higher ones, and no import circles.

Layers, bottom up: errors/ranking (and the package's version) → data → features → models (artifacts on top of
them) → evaluation → pipeline/recommend (the query core) → serving/commands/cli. Imports inside functions
count (a lazy import is still an arrow); imports only for type checking do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fusionrec"

LAYERS = {
    "fusionrec": 0,  # __init__: the version only
    "errors": 0,
    "files": 0,  # bounded reads of regular files
    "params": 0,  # parameter types from signatures
    "lazy": 0,  # package attributes imported on first use
    "ranking": 0,
    "measures": 0,  # RMSE / MAE, pure
    "distributed": 0,  # torch.distributed process group helpers, used by the trainer and the commands
    "data": 1,
    "features": 2,
    "models": 3,
    "artifacts": 3,
    "evaluation": 4,
    "pipeline": 5,
    "recommend": 5,
    "interactions": 5,  # interactions after fitting, applied to an artifact (facade and server)
    "experiment": 6,  # runs commands: load options, grids
    "report": 5,
    "tuning": 5,
    "api": 5,  # the Python facade, beside the query core it calls
    "new_items": 5,  # adding an item by content: the facade and the server
    "tracking": 5,
    "serving": 6,
    "commands": 6,
    "cli": 6,
    "__main__": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(every fusionrec module imported anywhere, those imported at module level) for one file."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for b in node.body for n in ast.walk(b)}
    top_level = {id(n) for n in tree.body} | {
        id(n) for s in tree.body if isinstance(s, ast.If | ast.Try) for n in ast.walk(s)
    }
    everywhere, at_top = set(), set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = (
                    module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
                )
                up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            if n == "fusionrec" or n.startswith("fusionrec."):
                everywhere.add(n)
                if id(node) in top_level:
                    at_top.add(n)
    return everywhere, at_top


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else LAYERS["fusionrec"]


def graph():
    modules = {module_name(p): p for p in SRC.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:  # "fusionrec.data.graph.knn_cosine" -> "fusionrec.data.graph"
            name = name.rpartition(".")[0]
        return name or None

    edges, top = {}, {}
    for m, p in modules.items():
        every, at_top = imports(p)
        edges[m] = {r for n in every if (r := resolve(n)) and r != m}
        top[m] = {r for n in at_top if (r := resolve(n)) and r != m}
    return modules, edges, top


def test_every_package_has_a_layer():
    modules, _, _ = graph()
    unknown = sorted({m.split(".")[1] for m in modules if "." in m} - set(LAYERS))
    assert not unknown, f"give {unknown} a layer in LAYERS"


# the package root hands out the facade on first use (``fusionrec.Recommender``): the one arrow allowed up
ENTRY_POINTS = {("fusionrec", "fusionrec.api")}


def test_no_import_runs_up_the_layers():
    _, edges, _ = graph()
    upward = sorted(
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in edges.items()
        for b in targets
        if layer(b) > layer(a) and b != "fusionrec" and (a, b) not in ENTRY_POINTS
    )
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    _, _, top = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(top.get(m, ())):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(top):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    # guards the checker itself: a models file importing evaluation must be reported
    path = tmp_path / "fusionrec" / "models" / "bad.py"
    path.parent.mkdir(parents=True)
    path.write_text("def f():\n    from fusionrec.evaluation import evaluate\n")
    every, at_top = imports(path)
    assert "fusionrec.evaluation" in every and not at_top

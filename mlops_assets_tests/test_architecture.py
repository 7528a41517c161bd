"""The allowed import directions, checked on the source: a new sideways edge fails here.

Layers (a module may import its own layer and the ones listed):

    core         pure domain: only core (and numpy/pandas/pyarrow/scikit-learn/scipy/...)
    pipeline     core                         (the chain's shape, read from dvc.yaml)
    stages       core, pipeline               (what dvc.yaml runs)
    repo         core, pipeline               (DVC and git side effects)
    defs         core, pipeline, stages, repo (Dagster only)
    definitions  defs                         (the Dagster entry point)
    serve        core                         (the web service)
    demo         core, pipeline, stages, repo, defs, definitions
    cli          everything                   (one main mounting every subcommand)

Any module may import the (empty) package itself, `mlops_assets`, for its version.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mlops_assets"

ALLOWED: dict[str, set[str]] = {
    "package": set(),
    "core": set(),
    "pipeline": {"core"},
    "stages": {"core", "pipeline"},
    "repo": {"core", "pipeline"},
    "defs": {"core", "pipeline", "stages", "repo"},
    "definitions": {"defs"},
    "serve": {"core"},
    "demo": {"core", "pipeline", "stages", "repo", "defs", "definitions"},
    "cli": {"core", "pipeline", "stages", "repo", "defs", "definitions", "serve", "demo"},
}
# Third-party packages the functional core must never import: it stays runnable (and
# testable in milliseconds) without an orchestrator, DVC or a web framework.
CORE_FORBIDDEN = {"dagster", "dagster_webserver", "dvc", "fastapi", "uvicorn", "starlette"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "package"


def _resolve(node: ast.ImportFrom | ast.Import) -> list[str]:
    """The project modules an import statement loads (`from pkg import mod` -> pkg.mod)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("mlops_assets")]
    if node.level or not (node.module or "").startswith("mlops_assets"):
        return []
    base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _imports(path: Path) -> list[tuple[ast.stmt, bool]]:
    """Every import statement, and whether it sits at module level."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    top |= {id(n) for n in ast.walk(tree) if isinstance(n, ast.If | ast.Try)
            and id(n) in top for n in n.body}
    return [(n, id(n) in top) for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _edges() -> dict[str, set[str]]:
    return {m: {t for n, _ in _imports(p) for t in _resolve(n)} for m, p in MODULES.items()}


def test_layers_import_only_downward() -> None:
    bad = []
    for module, targets in _edges().items():
        layer = _layer(module)
        if layer not in ALLOWED:
            bad.append(f"{module}: not in a known layer")
            continue
        for target in targets:
            tl = _layer(target)
            if tl not in (layer, "package") and tl not in ALLOWED[layer]:
                bad.append(f"{module} -> {target} ({layer} may not import {tl})")
    assert not bad, "sideways or upward imports:\n" + "\n".join(sorted(bad))


def test_core_imports_no_orchestrator_dvc_or_web_framework() -> None:
    bad = []
    for module, path in MODULES.items():
        if _layer(module) != "core":
            continue
        for node, _ in _imports(path):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            bad += [f"{module} imports {n}" for n in names if n.split(".")[0] in CORE_FORBIDDEN]
    assert not bad, "\n".join(bad)


def _lazy(lines: list[str], lineno: int) -> bool:
    """A `# Lazy: <why>` comment in the lines just above an import marks a deliberate
    deferral (the command line must start fast; `--help` never waits for dagster)."""
    return any(line.strip().startswith("# Lazy:") for line in lines[max(0, lineno - 6):lineno - 1])


def test_project_imports_sit_at_the_top_of_the_file() -> None:
    """An import inside a function hides the real dependency graph from a reader. Only the
    command line may defer one (start-up time), and then says why in a `# Lazy:` comment;
    the layering test above still sees it."""
    bad = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node, top in _imports(path):
            if top or not _resolve(node):
                continue
            if _layer(module) == "cli" and _lazy(lines, node.lineno):
                continue
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not bad, "project imports inside functions:\n" + "\n".join(bad)


def test_module_graph_has_no_cycles() -> None:
    edges = {m: {t for t in ts if t in MODULES and t != m} for m, ts in _edges().items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> bool:
        state[m] = 1
        for t in sorted(edges[m]):
            # a package importing its own submodule (an __init__ re-export) is not a cycle
            if t.startswith(m + "."):
                continue
            if state.get(t) == 1:
                cycle.extend(stack[stack.index(t):] + [t] if t in stack else [m, t])
                return True
            if not state.get(t) and visit(t, stack + [t]):
                return True
        state[m] = 2
        return False

    for m in sorted(edges):
        if not state.get(m) and visit(m, [m]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_every_layer_exists(layer: str) -> None:
    assert any(_layer(m) == layer for m in MODULES), f"no module in layer {layer}"

"""Layering as the README draws it: a stage imports only stages to its left, nothing imports a
private name of another stage, no module imports itself round a cycle, and importing a stage
alone loads only what is left of it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).parent.parent / "src"
# data -> models -> explain -> metrics -> results -> report, studies above them, the CLI on top;
# config and runtime are utilities every stage may use.
ORDER = ("config", "runtime", "data", "models", "explain", "metrics", "results", "report",
         "studies", "cli")


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "salbench").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Module -> salbench modules it imports (anywhere in the file, function bodies included),
    and the (module, name) pairs that import a private name from another stage."""
    mods = modules()
    graph, private = defaultdict(set), []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("salbench"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    graph[name].add(full if full in mods else node.module)
                    if alias.name.startswith("_") and stage(node.module) != stage(name):
                        private.append((name, full))
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name.startswith("salbench")}
    return graph, private


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_stage_imports_only_stages_to_its_left():
    graph, _ = import_graph()
    wrong = sorted((a, b) for a, targets in graph.items() for b in targets
                   if stage(a) in ORDER and stage(b) in ORDER
                   and ORDER.index(stage(b)) > ORDER.index(stage(a)))
    assert wrong == []


def test_no_private_imports_across_stages():
    assert import_graph()[1] == []


def test_no_import_cycles():
    graph, _ = import_graph()
    mods = set(modules())
    seen, on_path, cycles = set(), [], []

    def visit(node: str) -> None:
        on_path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in mods:
                continue
            if nxt in on_path:
                cycles.append(on_path[on_path.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt)
        on_path.pop()
        seen.add(node)

    for module in sorted(mods):
        if module not in seen:
            visit(module)
    assert cycles == []


LOADED = """
import json, sys
out = {}
for stage in STAGES:
    __import__("salbench." + stage)
    out[stage] = sorted(m for m in sys.modules if m.startswith(("salbench.", "duckdb", "ray")))
print(json.dumps(out))
"""


def test_importing_the_stages_in_order_loads_nothing_to_the_right_of_each():
    """One interpreter imports data, models, …, studies in flow order; after each import,
    nothing right of that stage (and not DuckDB before the results stage, nor Ray before the
    Ray executor is asked for) may be loaded: e.g. ``import salbench.data`` loads no DuckDB."""
    stages = [s for s in ORDER if s not in ("config", "runtime", "cli")]
    script = f"STAGES = {stages!r}" + LOADED
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)
    loaded = json.loads(done.stdout)
    for k, name in enumerate(stages):
        right = tuple(f"salbench.{s}" for s in stages[k + 1:]) + ("salbench.cli", "ray")
        right += ("duckdb",) if k < stages.index("results") else ()
        assert [m for m in loaded[name] if m.startswith(right)] == [], name

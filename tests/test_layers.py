"""The packages depend one way: schema at the bottom, ingest and query above it (each blind to
the other), web on top; and no two modules import each other, even through a chain or an import
hidden inside a function. See docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schema", "ingest", "query", "web")
LAYER = {"schema": 0, "ingest": 1, "query": 1, "web": 2}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "flightlog." + ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every flightlog module `path` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from flightlog.query import trails` imports the module flightlog.query.trails
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t.startswith("flightlog.") and t != name)
    return found


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) & known for name, path in modules.items()}


def package_of(module: str) -> str:
    return module.split(".")[1]


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in edges.items():
        for target in targets:
            a, b = package_of(source), package_of(target)
            if LAYER[b] > LAYER[a] or (a != b and LAYER[a] == LAYER[b]):
                wrong.append(f"{source} imports {target} ({a} may not depend on {b})")
    return sorted(wrong)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_package_is_scanned_and_imports_are_seen_inside_functions():
    edges = graph()
    assert {package_of(m) for m in edges} == set(PACKAGES)
    # web.server registers the services; the checker must see it do so
    assert "flightlog.ingest.routes" in edges["flightlog.web.server"]
    assert "flightlog.query.api" in edges["flightlog.web.server"]


def test_no_module_imports_from_a_higher_layer_or_a_sibling_service():
    assert layer_violations(graph()) == []


def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


def test_the_checks_catch_an_upward_import_a_sibling_import_and_a_cycle():
    edges = {
        "flightlog.schema.store": {"flightlog.web.server"},
        "flightlog.ingest.routes": {"flightlog.query.search"},
        "flightlog.query.a": {"flightlog.query.b"},
        "flightlog.query.b": {"flightlog.query.c"},
        "flightlog.query.c": {"flightlog.query.a"},
    }
    assert len(layer_violations(edges)) == 2
    assert cycles(edges) == [["flightlog.query.a", "flightlog.query.b", "flightlog.query.c"]]


def test_a_function_level_import_counts(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from flightlog.web import pages\n")
    assert imports_of("flightlog.schema.late", module, {"flightlog.web.pages"}) == {"flightlog.web.pages"}


HTTP_MODULES = {
    "flightlog.query.api", "flightlog.query.search_api", "flightlog.query.tail_api", "flightlog.query.slots_api",
    "flightlog.query.cicd_api",
    "flightlog.query.alerts.api",
    # HTTP clients: the notification channels post to Slack, webhooks and Alertmanager
    "flightlog.query.alerts.notify.dispatcher", "flightlog.query.alerts.notify.alertmanager",
    "flightlog.query.alerts.notify.webhook", "flightlog.query.alerts.notify.slack",
    "flightlog.query.alerts.notify.apprise_channel",
}


def test_query_functions_and_protocol_parsers_import_no_aiohttp():
    """Plain functions return data and raise Refusal; only the HTTP modules speak aiohttp, so the
    same function serves a page, the API, an alert rule or a chat command."""
    speaking = []
    for name, path in all_modules().items():
        if not (name.startswith("flightlog.query") or name.startswith("flightlog.ingest.protocols")):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m.split(".")[0] == "aiohttp" for m in modules) and name not in HTTP_MODULES:
                speaking.append(name)
    assert speaking == []

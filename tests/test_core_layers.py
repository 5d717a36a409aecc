"""The core's modules import one way: no import cycle anywhere in ``asyncrepo`` (type-only
imports included), and the core layers only import downwards.

Checked with grimp (the graph library behind import-linter), which reads every import
statement, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import grimp
import pytest

#: Lowest first. A module may import only modules of lower layers (modules of one layer are
#: independent of each other) and modules outside this list.
CORE_LAYERS = [
    ["asyncrepo._version", "asyncrepo.exceptions"],
    ["asyncrepo.convert", "asyncrepo.item", "asyncrepo.wire"],
    ["asyncrepo.pagination"],
    ["asyncrepo.http"],
    ["asyncrepo.repository"],
    ["asyncrepo.rest", "asyncrepo.federation"],
    ["asyncrepo.registry"],
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("asyncrepo", cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph.modules:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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


def test_no_import_cycle_in_asyncrepo(graph: grimp.ImportGraph) -> None:
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.build_graph("asyncrepo", cache_dir=None)
    graph.add_import(importer="asyncrepo.item", imported="asyncrepo.repository")
    assert any("asyncrepo.item" in c and "asyncrepo.repository" in c for c in cycles(graph))


def test_core_layers_import_downwards_only(graph: grimp.ImportGraph) -> None:
    rank = {module: n for n, layer in enumerate(CORE_LAYERS) for module in layer}
    upward = [
        f"{importer} -> {imported}"
        for importer, level in rank.items()
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported in rank and rank[imported] >= level and imported != importer
    ]
    assert upward == []

"""Operations on built circuit graphs, without the model: merging several targets' graphs,
one target's part of a merged graph, pruning by cumulative influence and edge weight (as
circuit-tracer's ``prune_graph`` does), a finished map's graph as it is exported (pruned and
grouped into supernodes), and the strongest chain into a target."""

from __future__ import annotations

import statistics

import networkx as nx

# Graph attributes that merging several targets averages (per-layer diagnostics) ...
FAITHFULNESS_FIGURES = (
    "completeness",
    "sufficiency",
    "sufficiency_no_error",
    "error_share",
    "random_completeness",
    "random_sufficiency",
    "joint_sufficiency",
    "joint_random_sufficiency",
)
# ... and the whole-circuit figures, of which it keeps the median (a ratio above 1 stays one).
CIRCUIT_FIGURES = (
    "circuit_circuit",
    "circuit_no_error",
    "circuit_complement",
    "circuit_random",
    "circuit_area",
    "circuit_feature_nodes",
    "circuit_error_nodes",
    "circuit_build",
)


# Graph attributes that count what a target's map used: merging keeps the largest.
USED_COUNTS = ("n_prompts", "effect_prompts", "n_heldout", "top_k", "controls")


def _join(*ids: str) -> str:
    return ",".join(dict.fromkeys(i for text in ids for i in text.split(",")))


def merge_graphs(graphs: list[nx.DiGraph]) -> nx.DiGraph:
    """One graph of several targets' graphs: shared features are shared nodes (see the schema
    for which target's values a shared node or edge keeps)."""
    merged = nx.DiGraph(**graphs[0].graph)
    merged.graph["targets"] = _join(*(g.graph["targets"] for g in graphs))
    for name in FAITHFULNESS_FIGURES:  # the mean over the targets where it is defined
        values = [g.graph[name] for g in graphs if name in g.graph]
        if values:
            merged.graph[name] = sum(values) / len(values)
    for name in CIRCUIT_FIGURES:
        values = [g.graph[name] for g in graphs if name in g.graph]
        if values:
            merged.graph[name] = statistics.median(values)
    for name in USED_COUNTS:
        counts = [g.graph[name] for g in graphs if name in g.graph]
        if counts:
            merged.graph[name] = max(counts)
    prompts = [g.graph["heldout_prompts"] for g in graphs if "heldout_prompts" in g.graph]
    if prompts:
        merged.graph["heldout_prompts"] = sum(prompts)
    merged.graph["layers"] = ",".join(
        sorted({x for g in graphs for x in g.graph["layers"].split(",") if x}, key=int)
    )
    for graph in graphs:
        for node, d in graph.nodes(data=True):
            if node in merged:
                merged.nodes[node]["targets"] = _join(merged.nodes[node]["targets"], d["targets"])
                if d.get("in_circuit"):  # in the whole circuit of any of its targets
                    merged.nodes[node]["in_circuit"] = True
            else:
                merged.add_node(node, **d)
        for u, v, d in graph.edges(data=True):
            if merged.has_edge(u, v):
                old = merged.edges[u, v]
                both = _join(old["targets"], d["targets"])
                if abs(d["weight"]) > abs(old["weight"]):
                    old.update(d)
                old["targets"] = both
            else:
                merged.add_edge(u, v, **d)
    return merged


def prune(graph: nx.DiGraph, node_threshold: float, edge_threshold: float) -> nx.DiGraph:
    """A copy that keeps, in each layer, the fewest nodes whose summed |influence| reaches
    ``node_threshold`` of the layer's (error nodes and the whole circuit's nodes always stay),
    and of the edges between kept nodes the fewest whose summed |weight| reaches
    ``edge_threshold`` of theirs (as circuit-tracer's ``prune_graph`` does with cumulative
    thresholds), with every edge between two nodes of the whole circuit; records what it hid."""
    by_layer: dict[int, list[tuple[float, str]]] = {}
    for node, d in graph.nodes(data=True):
        if d["kind"] == "feature":
            by_layer.setdefault(d["layer"], []).append((abs(d.get("influence", 0.0)), node))
    hidden_nodes, hidden_share, total_share = [], 0.0, 0.0
    for items in by_layer.values():
        items.sort(reverse=True)
        total = sum(value for value, _ in items)
        kept = _cumulative([value for value, _ in items], node_threshold)
        hidden = [(v, node) for v, node in items[kept:] if not graph.nodes[node].get("in_circuit")]
        hidden_nodes += [node for _, node in hidden]
        hidden_share += sum(value for value, _ in hidden)
        total_share += total
    pruned = graph.copy()
    pruned.remove_nodes_from(hidden_nodes)

    def inside(node: str) -> bool:
        return bool(pruned.nodes[node].get("in_circuit"))

    edges = sorted(pruned.edges(data="weight"), key=lambda e: -abs(e[2]))
    kept_edges = _cumulative([abs(w) for *_, w in edges], edge_threshold)
    pruned.remove_edges_from(
        [(u, v) for u, v, _ in edges[kept_edges:] if not (inside(u) and inside(v))]
    )
    pruned.graph.update(
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
        nodes_total=graph.number_of_nodes(),
        nodes_hidden=len(hidden_nodes),
        edges_total=graph.number_of_edges(),
        edges_hidden=graph.number_of_edges() - pruned.number_of_edges(),
        influence_hidden=hidden_share / total_share if total_share > 0 else 0.0,
    )
    return pruned


def _cumulative(values: list[float], threshold: float) -> int:
    """How many of ``values`` (sorted from the largest) reach ``threshold`` of their sum (all of
    them at 1, zeros included)."""
    total = sum(values)
    if total <= 0 or threshold >= 1:
        return len(values)
    running = 0.0
    for count, value in enumerate(values, 1):
        running += value
        if running >= threshold * total:
            return count
    return len(values)


def circuit_subgraph(graph: nx.DiGraph) -> nx.DiGraph:
    """The whole circuit's nodes (``in_circuit``) and the edges between them; the graph itself
    when no node says whether it belongs to one."""
    if not any("in_circuit" in d for _, d in graph.nodes(data=True)):
        return graph
    return graph.subgraph(n for n, d in graph.nodes(data=True) if d.get("in_circuit")).copy()


def strongest_chain(graph: nx.DiGraph, target: str) -> list[str]:
    """The chain of features into ``target`` through the most layers along supporting edges
    (positive weight), ties broken by the chain's weakest edge: e.g. Feature 302 -> Feature
    10839 -> Neuron 8526. Error nodes are not features, so no chain passes through them (what
    they carry is the error share); ``[target]`` alone when no feature chain reaches it. Meant
    for a pruned graph, whose edges all passed the threshold."""
    best: dict[str, tuple[int, float, list[str]]] = {}  # node -> (edges, weakest edge, chain)
    for node in nx.topological_sort(graph):
        if graph.nodes[node].get("kind") == "error":
            continue
        options = [(0, float("inf"), [node])]
        for u, _, w in graph.in_edges(node, data="weight"):
            if w > 0 and u in best:
                length, weakest, chain = best[u]
                options.append((length + 1, min(weakest, w), [*chain, node]))
        best[node] = max(options, key=lambda option: option[:2])
    return best[target][2]

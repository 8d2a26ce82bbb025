"""What the explorer page reads: the graph as one JSON block (nodes as a list with their
attributes and tooltip, edges as parallel arrays of node positions, weights and target sets),
the layers' decodes, the supernodes, and how much of an oversized export the page leaves out.

The JSON's ``<``, ``>`` and ``&`` are escaped, so no generated text inside it is parsed as markup.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import networkx as nx

# What the page draws within its time budget (one hover or slider move <= 100 ms in Chromium,
# benchmarks/explorer_speed.py): an export with more is cut to its strongest nodes and edges.
MAX_NODES = 5_000
MAX_EDGES = 100_000


@dataclass(frozen=True)
class Cut:
    """How an export too big for the page was cut: the page says so and names thresholds that
    fit (``node_threshold``/``edge_threshold``: cumulative shares, as ``circuitmap export``
    takes them)."""

    nodes_total: int
    nodes_drawn: int
    edges_total: int
    edges_drawn: int
    node_threshold: float
    edge_threshold: float


# A layer's gradient Patchscope and its check against the circuit (circuit.graph's schema):
# carried by every node of the layer, sent once a layer.
LAYER = (
    "patchscope",
    "layer_level",
    "restart_top1",
    "restart_jaccard",
    "restart_consensus",
    "x_features",
    "x_ranks",
    "x_overlap",
    "circuit_decode",
)


def _figure(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def tooltip(d: dict[str, Any]) -> str:
    """A node's hover text (plain text: the page shows it with ``textContent``)."""
    if d["kind"] == "neuron":
        return f"{d['label']}\ntarget neuron"
    lines = [
        d["label"] + ("  (in the whole circuit)" if d.get("in_circuit") else ""),
        f"influence {_figure(d.get('influence'))} of the target (removed on the effect prompts)",
        f"attribution {_figure(d.get('attribution'))}",
    ]
    if "p_value" in d:
        lines.append(
            f"vs controls: p {d['p_value']:.3f} (q {_figure(d.get('q_value'))} over the graph's "
            f"nodes, Benjamini-Hochberg), effect size {_figure(d.get('effect_size'))}, "
            f"95% CI [{_figure(d.get('ci_low'))}, {_figure(d.get('ci_high'))}]"
        )
    if "agreement" in d:
        lines.append(f"kept in {d['agreement']:.0%} of resamples")
    if "activation" in d:
        lines.append(f"activation on X: {d['activation']:.2f}")
    if "layer_completeness" in d or "layer_sufficiency" in d:
        lines.append(
            f"layer {d['layer']} circuit: completeness {_figure(d.get('layer_completeness'))}, "
            f"sufficiency {_figure(d.get('layer_sufficiency'))}"
        )
    if "patchscope" in d:
        lines.append(f"Patchscope (layer {d['layer']}): {d['patchscope']!r}")
    if "causal_description" in d:
        flag = "  ⚠ contradicts the label" if d.get("label_flagged") else ""
        lines += [
            f"label: {d.get('imported_label') or '(none imported)'}",
            f"causal (Patchscope of the feature): {d['causal_description']!r}",
            f"label similarity {_figure(d.get('label_similarity'))}{flag}",
        ]
    return "\n".join(lines)


def _cumulative_share(values: list[float], kept: int) -> float:
    """The share of ``sum(values)`` that the ``kept`` largest carry (the threshold that keeps
    about that many)."""
    ordered = sorted(values, reverse=True)
    total = sum(ordered)
    return 1.0 if total <= 0 else math.floor(1000 * sum(ordered[:kept]) / total) / 1000


def fit_to_page(graph: nx.DiGraph) -> tuple[nx.DiGraph, Cut | None]:
    """``graph`` itself when the page can draw it; else a copy with its strongest
    :data:`MAX_NODES` nodes (targets, error nodes and circuit nodes first) and :data:`MAX_EDGES`
    edges by |weight|, and the :class:`Cut` the page reports."""
    if graph.number_of_nodes() <= MAX_NODES and graph.number_of_edges() <= MAX_EDGES:
        return graph, None

    def rank(item: tuple[str, dict[str, Any]]) -> tuple[bool, float]:
        d = item[1]
        first = d["kind"] != "feature" or bool(d.get("in_circuit"))
        return first, abs(d.get("influence") or 0.0)

    ordered = sorted(graph.nodes(data=True), key=rank, reverse=True)
    cut = graph.subgraph([n for n, _ in ordered[:MAX_NODES]]).copy()
    edges = sorted(cut.edges(data="weight"), key=lambda e: -abs(e[2]))
    cut.remove_edges_from([(u, v) for u, v, _ in edges[MAX_EDGES:]])
    features = [abs(d.get("influence") or 0.0) for _, d in graph.nodes(data=True)]
    weights = [abs(w) for *_, w in graph.edges(data="weight")]
    return cut, Cut(
        nodes_total=graph.number_of_nodes(),
        nodes_drawn=cut.number_of_nodes(),
        edges_total=graph.number_of_edges(),
        edges_drawn=cut.number_of_edges(),
        node_threshold=_cumulative_share(features, MAX_NODES),
        edge_threshold=_cumulative_share(weights, MAX_EDGES),
    )


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """Attributes with NaN or infinite numbers left out (not measured: the page shows "–")."""
    return {k: v for k, v in d.items() if not (isinstance(v, float) and not math.isfinite(v))}


def supernode_list(graph: nx.DiGraph) -> list[list[str]]:
    """The graph's supernodes, ``[[label, node_id, ...], ...]`` (graph attribute ``supernodes``,
    JSON text; empty when absent), members limited to nodes of ``graph``."""
    groups = json.loads(graph.graph.get("supernodes") or "[]")
    kept = [[label, *(m for m in members if m in graph)] for label, *members in groups]
    return [g for g in kept if len(g) > 2]


def page_data(graph: nx.DiGraph) -> str:
    """The JSON block the explorer script reads, safe inside a ``<script>`` element."""
    ids = list(graph.nodes)
    position = {node: i for i, node in enumerate(ids)}
    layers: dict[int, dict[str, Any]] = {}
    nodes = []
    for node, d in graph.nodes(data=True):
        if "patchscope" in d:
            layers.setdefault(d["layer"], {k: v for k, v in _finite(d).items() if k in LAYER})
        item = {k: v for k, v in _finite(d).items() if k not in LAYER and k != "plain_decode"}
        nodes.append({**item, "id": node, "tooltip": tooltip(_finite(d))})
    target_sets: dict[str, int] = {}
    edges: dict[str, list[Any]] = {"s": [], "t": [], "w": [], "g": []}
    for u, v, d in graph.edges(data=True):
        edges["s"].append(position[u])
        edges["t"].append(position[v])
        edges["w"].append(d["weight"] if math.isfinite(d["weight"]) else 0.0)
        edges["g"].append(target_sets.setdefault(d.get("targets", ""), len(target_sets)))
    supernodes = [
        {
            "id": f"S{k}",
            "label": label,
            "members": [position[m] for m in members],
            "layers": sorted({graph.nodes[m]["layer"] for m in members}),
        }
        for k, (label, *members) in enumerate(supernode_list(graph))
    ]
    data = {
        "nodes": nodes,
        "edges": edges,
        "edge_targets": list(target_sets),
        "layers": layers,
        "supernodes": supernodes,
        "circuit": any("in_circuit" in d for _, d in graph.nodes(data=True)),
        "dashboard_texts": graph.graph.get("dashboard_texts"),
    }
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")

"""The circuit as a networkx DiGraph.

Schema
------
Graph attributes: ``model``, ``targets`` (comma-separated target ids), ``layers``
(comma-separated), ``ablation`` (zero|mean), ``lr``, ``lr_units``, ``steps``, ``top_k``,
``n_prompts``, ``restarts``, and after pruning ``threshold``, ``edges_total``,
``edges_hidden``, ``nodes_hidden``.

Every node and edge has ``targets``: the comma-separated ids of the targets whose maps contain
it. A map of several targets is their graphs merged: a feature found for two targets is one
node, and a feature -> feature edge measured for two targets is one edge. Where values differ
between targets (a feature's activation on each target's X_l, an edge's effect), the merged
node keeps the first target's values (in the order the targets were given) and the merged edge
the values of the target where its effect is largest; each target's own graph, with its own
values, is ``targets/<id>/graph.json`` in the run folder.

Nodes (id -> attributes):
- ``L{L}.N{n}``, kind ``neuron``: a target; ``layer``, ``index``, ``label``.
- ``L{l}.F{i}``, kind ``feature``: SAE feature i of the SAE reading resid_pre of layer l;
  ``layer``, ``index``, ``label``, ``activation`` (on the optimised X_l), ``mean_activation`` (on
  the Mean Vector), ``patchscope`` (contrastive decode of X_l), ``plain_decode``,
  ``layer_activation`` (the target's activation reached from layer l), ``neuronpedia`` (URL or
  ""), ``sae`` (where the SAE came from), and with ``--restarts`` ``restart_agreement``
  (fraction of random restarts whose top-k features include it); after ``circuitmap labels``:
  ``imported_label``, ``snippets`` (top-activating corpus contexts), ``causal_description``
  (Patchscope of the feature's direction), ``label_similarity`` and ``label_flagged``.

Edges (source -> destination), kind ``feature->target`` or ``feature->feature``:
- ``weight``: the relative effect on the optimised vector: the drop of the destination (the
  target, or the later feature) when the source feature is ablated, as a fraction of the
  destination's clean value (for a later feature: its activation on its own X_m). Positive:
  the source supports the destination; negative: it inhibits it.
- ``vector_effect``/``vector_relative``: that drop, raw and relative, measured on X;
- ``prompt_effect``/``prompt_relative``: the same, averaged over real prompts where the target
  fires (ablating the feature at every token);
- ``ablation``: zero or mean;
- feature -> target edges, with ``--controls R``: ``control_mean`` (mean on-prompt effect of R
  control features of similar activation level), ``p_value`` ((1 + #controls with an effect at
  least as large) / (1 + R)), ``effect_size`` (in control standard deviations), and
  ``ci_low``/``ci_high`` (bootstrap 95% interval of the on-prompt effect over prompts).
"""

from __future__ import annotations

import networkx as nx

from .config import MapConfig, Target
from .search import TargetResult


def feature_id(layer: int, index: int) -> str:
    return f"L{layer}.F{index}"


def build_graph(config: MapConfig, target: Target, result: TargetResult) -> nx.DiGraph:
    """The full (unpruned) circuit graph of one target."""
    sweep = result.sweep
    graph = nx.DiGraph(
        model=config.model.name,
        targets=target.id,
        layers=",".join(str(layer) for layer in sorted(sweep.layers)),
        ablation=config.ablation,
        lr=config.optim.lr,
        lr_units=config.optim.lr_units,
        steps=config.optim.steps,
        top_k=config.top_k,
        n_prompts=config.n_prompts,
        restarts=config.restarts,
    )
    graph.add_node(
        target.id,
        kind="neuron",
        layer=target.layer,
        index=target.neuron,
        label=f"Neuron {target.neuron} (L{target.layer})",
        targets=target.id,
    )
    for layer, search in sorted(sweep.layers.items()):
        for f in search.features.top:
            graph.add_node(
                feature_id(layer, f.index),
                kind="feature",
                layer=layer,
                index=f.index,
                label=f"Feature {f.index} (L{layer})",
                activation=f.activation,
                mean_activation=f.mean_activation,
                patchscope=search.contrastive_text,
                plain_decode=search.plain_text,
                layer_activation=search.final_activation,
                neuronpedia=f.neuronpedia_url or "",
                sae=search.features.sae_origin,
                targets=target.id,
            )
            if search.restart_agreement is not None:
                graph.nodes[feature_id(layer, f.index)]["restart_agreement"] = (
                    search.restart_agreement[f.index]
                )
    for layer, effects in sorted(result.effects.items()):
        for e in effects.target_effects:
            source = feature_id(layer, e["feature"])
            _add_edge(graph, source, target.id, "feature->target", e, config, target)
        for e in effects.feature_effects:
            destination = feature_id(e["later_layer"], e["later_feature"])
            source = feature_id(layer, e["feature"])
            _add_edge(graph, source, destination, "feature->feature", e, config, target)
    return graph


def _join(*ids: str) -> str:
    return ",".join(dict.fromkeys(i for text in ids for i in text.split(",")))


def merge_graphs(graphs: list[nx.DiGraph]) -> nx.DiGraph:
    """One graph of several targets' graphs: shared features are shared nodes (see the schema
    for which target's values a shared node or edge keeps)."""
    merged = nx.DiGraph(**graphs[0].graph)
    merged.graph["targets"] = _join(*(g.graph["targets"] for g in graphs))
    merged.graph["layers"] = ",".join(
        sorted({x for g in graphs for x in g.graph["layers"].split(",") if x}, key=int)
    )
    for graph in graphs:
        for node, d in graph.nodes(data=True):
            if node in merged:
                merged.nodes[node]["targets"] = _join(merged.nodes[node]["targets"], d["targets"])
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


def target_subgraph(graph: nx.DiGraph, target: str) -> nx.DiGraph:
    """The part of a (merged) graph that belongs to the target with id ``target``."""
    nodes = [n for n, d in graph.nodes(data=True) if target in d["targets"].split(",")]
    sub = graph.subgraph(nodes).copy()
    sub.remove_edges_from(
        [(u, v) for u, v, d in sub.edges(data=True) if target not in d["targets"].split(",")]
    )
    return sub


_NECESSITY = ("control_mean", "p_value", "effect_size", "ci_low", "ci_high")


def _add_edge(
    graph: nx.DiGraph,
    source: str,
    dest: str,
    kind: str,
    e: dict,
    config: MapConfig,
    target: Target,
) -> None:
    graph.add_edge(
        source,
        dest,
        kind=kind,
        targets=target.id,
        weight=e["vector_relative"],
        vector_effect=e["vector_effect"],
        vector_relative=e["vector_relative"],
        prompt_effect=e["prompt_effect"],
        prompt_relative=e["prompt_relative"],
        ablation=config.ablation,
        **{key: e[key] for key in _NECESSITY if key in e},
    )


def prune(graph: nx.DiGraph, threshold: float) -> nx.DiGraph:
    """A copy without edges whose |relative effect| (on X and on prompts) is below
    ``threshold``, nor feature nodes left unconnected; records how much it hid."""
    pruned = graph.copy()
    weak = [
        (u, v)
        for u, v, d in graph.edges(data=True)
        if max(abs(d["vector_relative"]), abs(d["prompt_relative"])) < threshold
    ]
    pruned.remove_edges_from(weak)
    lonely = [
        n for n, d in pruned.nodes(data=True) if d["kind"] == "feature" and pruned.degree(n) == 0
    ]
    pruned.remove_nodes_from(lonely)
    pruned.graph.update(
        threshold=threshold,
        edges_total=graph.number_of_edges(),
        edges_hidden=len(weak),
        nodes_hidden=len(lonely),
    )
    return pruned


def strongest_chain(graph: nx.DiGraph, target: str) -> list[str]:
    """The chain of features into ``target`` through the most layers along supporting edges
    (positive weight), ties broken by the chain's weakest edge: e.g. Feature 302 -> Feature
    10839 -> Neuron 8526. Meant for a pruned graph, whose edges all passed the threshold."""
    best: dict[str, tuple[int, float, list[str]]] = {}  # node -> (edges, weakest edge, chain)
    for node in nx.topological_sort(graph):
        options = [(0, float("inf"), [node])]
        for u, _, w in graph.in_edges(node, data="weight"):
            if w > 0 and u in best:
                length, weakest, chain = best[u]
                options.append((length + 1, min(weakest, w), [*chain, node]))
        best[node] = max(options, key=lambda option: option[:2])
    return best[target][2]

"""The circuit as a networkx DiGraph.

Schema
------
Graph attributes: ``model``, ``target_layer``, ``neuron``, ``layers`` (comma-separated),
``ablation`` (zero|mean), ``lr``, ``lr_units``, ``steps``, ``top_k``, ``n_prompts``, and after
pruning ``threshold``, ``edges_total``, ``edges_hidden``, ``nodes_hidden``.

Nodes (id -> attributes):
- ``L{L}.N{n}``, kind ``neuron``: the target; ``layer``, ``index``, ``label``.
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

from .config import MapConfig
from .search import LayerResult


def target_id(config: MapConfig) -> str:
    return f"L{config.target_layer}.N{config.neuron}"


def feature_id(layer: int, index: int) -> str:
    return f"L{layer}.F{index}"


def build_graph(config: MapConfig, results: dict[int, LayerResult], model_name: str) -> nx.DiGraph:
    """The full (unpruned) circuit graph of a map."""
    graph = nx.DiGraph(
        model=model_name,
        target_layer=config.target_layer,
        neuron=config.neuron,
        layers=",".join(str(layer) for layer in sorted(results)),
        ablation=config.ablation,
        lr=config.optim.lr,
        lr_units=config.optim.lr_units,
        steps=config.optim.steps,
        top_k=config.top_k,
        n_prompts=config.n_prompts,
        restarts=config.restarts,
    )
    target = target_id(config)
    graph.add_node(
        target,
        kind="neuron",
        layer=config.target_layer,
        index=config.neuron,
        label=f"Neuron {config.neuron} (L{config.target_layer})",
    )
    for layer, result in sorted(results.items()):
        for f in result.features.top:
            graph.add_node(
                feature_id(layer, f.index),
                kind="feature",
                layer=layer,
                index=f.index,
                label=f"Feature {f.index} (L{layer})",
                activation=f.activation,
                mean_activation=f.mean_activation,
                patchscope=result.contrastive_text,
                plain_decode=result.plain_text,
                layer_activation=result.final_activation,
                neuronpedia=f.neuronpedia_url or "",
                sae=result.features.sae_origin,
            )
            if result.restart_agreement is not None:
                graph.nodes[feature_id(layer, f.index)]["restart_agreement"] = (
                    result.restart_agreement[f.index]
                )
        for e in result.target_effects:
            _add_edge(graph, feature_id(layer, e["feature"]), target, "feature->target", e, config)
        for e in result.feature_effects:
            destination = feature_id(e["later_layer"], e["later_feature"])
            _add_edge(
                graph, feature_id(layer, e["feature"]), destination, "feature->feature", e, config
            )
    return graph


_NECESSITY = ("control_mean", "p_value", "effect_size", "ci_low", "ci_high")


def _add_edge(
    graph: nx.DiGraph, source: str, dest: str, kind: str, e: dict, config: MapConfig
) -> None:
    graph.add_edge(
        source,
        dest,
        kind=kind,
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

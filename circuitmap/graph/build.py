"""The circuit as a networkx DiGraph.

Schema
------
Graph attributes: ``model``, ``scan`` (the model's name for Neuronpedia), ``prompt`` and
``prompt_tokens`` (the strongest build prompt up to the target's peak, and its tokens as a JSON
list), ``targets`` (comma-separated target ids), ``layers`` (comma-separated), ``select``
(attribution|activation), ``ablation`` (silent|zero|mean), ``prompts`` (corpus or the prompt set
the circuit was built on), ``lr``, ``lr_units``, ``steps``, ``max_features``, ``share``,
``restarts``, ``min_context``, ``budget``, ``circuit_sites`` (comma-separated); the counts that
were used, which a small prompt set or SAE can make smaller than the options asked for (with
several targets, the most any target used): ``n_prompts`` (build prompts), ``effect_prompts``,
``n_heldout``, ``top_k`` (SAE features of X_l reported a layer), ``controls`` (control features
a layer was measured against; 0: none); the whole circuit's figures on the held-out prompts
(see :mod:`circuitmap.circuit.whole`; with several targets, their median): ``circuit_circuit``
(F(C)), ``circuit_no_error``, ``circuit_complement`` (F(M minus C)), ``circuit_random``,
``circuit_area``, ``circuit_feature_nodes``, ``circuit_error_nodes``, and ``circuit_build`` (its
F(C) on the build prompts that chose it, where the ratio is defined); the per-layer diagnostics
(see :mod:`circuitmap.circuit.faithfulness`; with several targets, their mean):
``completeness``, ``sufficiency``, ``sufficiency_no_error``, ``error_share``,
``random_completeness``, ``random_sufficiency``, ``joint_sufficiency``,
``joint_random_sufficiency``, ``heldout_prompts`` (summed over targets); after pruning
``node_threshold``, ``edge_threshold``, ``nodes_total``, ``nodes_hidden``, ``edges_total``,
``edges_hidden``, ``influence_hidden`` (share of the kept layers' summed |influence| that the
hidden nodes carry).

Every node has ``in_circuit`` (whether it belongs to the whole circuit; targets always do) and
every node and edge has ``targets``: the comma-separated ids of the targets whose maps contain
it. A map of several targets is their graphs merged: a feature found for two targets is one
node, and an edge measured for two targets is one edge. Where values differ between targets, the
merged node keeps the first target's values (in the order the targets were given) and the
merged edge the values of the target where its weight is largest; each target's own graph is
``targets/<id>/graph.json`` in the run folder.

Nodes (id -> attributes):
- ``L{L}.N{n}``, kind ``neuron``: a target; ``layer``, ``index``, ``label``.
- ``L{l}.F{i}``, kind ``feature``: SAE feature i of the SAE reading resid_pre of layer l, kept
  in the circuit; ``layer``, ``index``, ``label`` (``F{i} L{l}:`` and the tokens where it fires
  most on the build prompts), ``contexts`` (its strongest snippets, ``" | "``-separated, the
  firing token in ``[[ ]]``; left off where it never fires on them), ``rank`` (in its layer's
  selection),
  ``influence`` (the target's drop on the effect prompts when it is removed, relative to the
  clean target), ``effect`` (that drop, raw), ``attribution`` (its first-order estimate),
  ``agreement`` (how often a bootstrap resample of the build prompts keeps it, or with
  ``--select activation`` the random-restart agreement), ``activation`` (on the optimised X_l),
  ``vector_relative`` (the target's relative drop on X_l), with controls ``controls`` (how
  many the layer's nodes were measured against), ``control_mean``, ``p_value`` (paired
  sign-flip test over the effect prompts, against the controls closest to its activation
  level), ``q_value`` (Benjamini-Hochberg over the graph's nodes), ``effect_size``,
  ``ci_low``, ``ci_high``; ``patchscope`` and ``plain_decode``
  (the layer's gradient Patchscope decodes), ``layer_activation`` (the target reached from X_l),
  ``layer_level`` (that as a multiple of the target's corpus maximum), with restarts
  ``restart_top1``, ``restart_jaccard`` and ``restart_consensus``
  (:mod:`circuitmap.method.restarts`), ``x_features`` (X_l's top added features),
  ``x_ranks`` (their attribution ranks), ``x_overlap`` (their share among the layer's
  attribution top 10) and ``circuit_decode`` (the decode of the layer's circuit features;
  :mod:`circuitmap.circuit.x_check`),
  ``neuronpedia`` (its URL, where the SAE has one), ``sae`` (the SAE: a release/id, or its
  folder's last two parts); per-layer faithfulness
  ``layer_completeness``, ``layer_sufficiency``, ``layer_error_share``; after
  ``circuitmap labels`` also ``imported_label``, ``snippets``, ``causal_description``,
  ``label_similarity`` and ``label_flagged``.
- ``L{l}.E``, kind ``error``: layer l's SAE error term (what the SAE does not explain), with
  the same causal attributes as a feature (``index`` -1).

Edges (source -> destination), kind ``feature->feature`` (between consecutive mapped layers;
with ``--skip-edges`` also across layers) or ``feature->target`` (from the last mapped layer;
with ``--skip-edges`` from every layer), sources and destinations including error nodes:
- ``weight``: how much of the target stops flowing through the destination when the source is
  removed on the effect prompts, relative to the clean target (for ``feature->target``: the
  source's influence). Positive: the source supports the destination's contribution.
- ``effect``: the same in the target's units.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
from scipy.stats import false_discovery_control

from circuitmap.config import EMBEDDED_ID, EMBEDDED_MODEL
from circuitmap.graph.nodes import ERROR, feature_id, short_label

if TYPE_CHECKING:
    from circuitmap.circuit.effects import LayerEffects
    from circuitmap.circuit.faithfulness import Faithfulness
    from circuitmap.circuit.prompts import PromptSplit
    from circuitmap.circuit.selection import LayerSelection, Selection
    from circuitmap.circuit.sweep import LayerSearch, TargetSweep
    from circuitmap.config import MapConfig, Target
    from circuitmap.sae.features import FeatureReport


@dataclass
class TargetResult:
    """Everything mapped for one target: what its graph is built from."""

    sweep: TargetSweep
    prompts: PromptSplit
    selection: Selection
    effects: dict[int, LayerEffects]  # upstream layer -> its ablation effects
    faithfulness: Faithfulness | None  # None: not measured (config.faithfulness off)


def build_graph(config: MapConfig, target: Target, result: TargetResult) -> nx.DiGraph:
    """The full (unpruned) circuit graph of one target."""
    graph = nx.DiGraph(**_graph_attributes(config, target, result))
    graph.add_node(
        target.id,
        kind="neuron",
        layer=target.layer,
        index=target.neuron,
        label=f"Neuron {target.neuron} L{target.layer}",
        targets=target.id,
        in_circuit=True,
    )
    for layer in sorted(result.effects):
        _add_layer_nodes(graph, layer, result, target)
    _add_q_values(graph)
    for layer, effects in sorted(result.effects.items()):
        if effects.to_target:
            for node in effects.nodes:
                graph.add_edge(
                    feature_id(layer, node.feature),
                    target.id,
                    kind="feature->target",
                    weight=node.influence,
                    effect=node.effect,
                    targets=target.id,
                )
        for e in effects.edges:
            graph.add_edge(
                feature_id(layer, e.source),
                feature_id(e.later_layer, e.dest),
                kind="feature->feature",
                weight=e.relative,
                effect=e.effect,
                targets=target.id,
            )
    return graph


def _add_q_values(graph: nx.DiGraph) -> None:
    """Each node's p-value corrected over every node of the graph that has one: the
    Benjamini-Hochberg q-value (``scipy.stats.false_discovery_control``)."""
    tested = [(n, d["p_value"]) for n, d in graph.nodes(data=True) if "p_value" in d]
    if tested:
        q_values = false_discovery_control([p for _, p in tested], method="bh")
        for (node, _), q in zip(tested, q_values.tolist(), strict=True):
            graph.nodes[node]["q_value"] = q


def _graph_attributes(config: MapConfig, target: Target, result: TargetResult) -> dict:
    """The graph's own attributes: the model, the strongest build prompt, the settings (counts
    as used), and the faithfulness figures when they were measured."""
    strongest = result.prompts.build
    reported = [len(s.features.top) for s in result.sweep.layers.values()]
    attributes = dict(
        model=config.model.name,
        scan=scan_name(config.model.name),
        prompt="".join(strongest.tokens[0]) if strongest.tokens else strongest.texts[0],
        prompt_tokens=json.dumps(strongest.tokens[0] if strongest.tokens else []),
        targets=target.id,
        layers=",".join(str(layer) for layer in sorted(result.sweep.layers)),
        select=config.select,
        ablation=config.ablation,
        prompts=config.prompts or "corpus",
        n_prompts=len(strongest.texts),
        effect_prompts=len(result.prompts.effect.texts),
        n_heldout=len(result.prompts.heldout.texts),
        controls=max((len(e.controls) for e in result.effects.values()), default=0),
        lr=config.optim.lr,
        lr_units=config.optim.lr_units,
        steps=config.optim.steps,
        top_k=max(reported, default=0),
        max_features=config.max_features,
        share=config.share,
        restarts=config.restarts,
        min_context=config.min_context,
        budget=config.budget,
    )
    circuit = result.selection.circuit
    if circuit is not None:
        attributes["circuit_sites"] = ",".join(str(site) for site in circuit.sites)
        if circuit.build_fit is not None:
            attributes["circuit_build"] = circuit.build_fit
    if result.faithfulness is not None:
        summary = result.faithfulness.summary()
        attributes.update({k: v for k, v in summary.items() if v is not None})
    return attributes


def _add_layer_nodes(graph: nx.DiGraph, layer: int, result: TargetResult, target: Target) -> None:
    """The measured nodes of one layer: its kept features and its error node."""
    search, chosen = result.sweep.layers[layer], result.selection.layers[layer]
    common = {
        "layer": layer,
        "patchscope": search.contrastive_text,
        "plain_decode": search.plain_text,
        "layer_activation": search.final_activation,
        "sae": sae_name(search.features.sae_origin),
        "targets": target.id,
    }
    common |= _x_attributes(search, chosen)
    if result.effects[layer].controls:
        common["controls"] = len(result.effects[layer].controls)
    if result.faithfulness is not None:
        figures = result.faithfulness.layers[layer]
        for name in ("completeness", "sufficiency", "error_share"):
            if getattr(figures, name) is not None:
                common[f"layer_{name}"] = getattr(figures, name)
    circuit = result.selection.circuit
    site = circuit is not None and layer in circuit.sites
    for node in result.effects[layer].nodes:
        if site and circuit is not None and node.feature == ERROR:
            common["in_circuit"] = circuit.errors[layer]
        elif circuit is not None:
            common["in_circuit"] = site and node.feature in circuit.features[layer]
        measured = {
            k: v for k, v in dataclasses.asdict(node).items() if v is not None and k != "feature"
        }
        if node.feature == ERROR:
            graph.add_node(
                feature_id(layer, ERROR),
                kind="error",
                index=ERROR,
                label=f"Error L{layer}",
                attribution=chosen.error_attribution,
                **measured,
                **common,
            )
            continue
        rank = chosen.ranked.index(node.feature)
        contexts = chosen.contexts[rank]
        attrs = {
            "kind": "feature",
            "index": node.feature,
            "label": short_label(layer, node.feature, contexts),
            "rank": rank,
            "attribution": chosen.attribution[rank],
            "activation": chosen.activation[rank],
            **measured,
            **common,
        }
        if contexts:
            attrs["contexts"] = " | ".join(f"{c.before}[[{c.token}]]" for c in contexts)
        url = _neuronpedia(search.features, node.feature)
        if url is not None:
            attrs["neuronpedia"] = url
        if chosen.agreement[rank] is not None:
            attrs["agreement"] = chosen.agreement[rank]
        graph.add_node(feature_id(layer, node.feature), **attrs)


def _x_attributes(search: LayerSearch, chosen: LayerSelection) -> dict[str, object]:
    """The layer's gradient Patchscope against its circuit (what was measured, no nulls)."""
    values = {
        "layer_level": search.level,
        "restart_top1": search.top1_agreement,
        "restart_jaccard": search.jaccard,
        "restart_consensus": ",".join(map(str, search.consensus)) or None,
        "x_features": ",".join(map(str, chosen.x_features)) or None,
        "x_ranks": ",".join(map(str, chosen.x_ranks)) or None,
        "x_overlap": chosen.x_overlap,
        "circuit_decode": chosen.circuit_decode,
    }
    return {k: v for k, v in values.items() if v is not None}


def scan_name(model: str) -> str:
    """The model's name as Neuronpedia's ``scan`` expects it: ``gemma-3-270m`` for the embedded
    model, the last part of a hub name or folder otherwise."""
    return EMBEDDED_ID if model == EMBEDDED_MODEL else Path(model.rstrip("/")).name


def sae_name(origin: str) -> str:
    """Where an SAE came from, without the local folders above it: a release/id as it is, a
    folder by its last two parts (``gemma-3-270m/resid_pre_8``)."""
    path = Path(origin)
    return "/".join(path.parts[-2:]) if path.is_absolute() else origin


def _neuronpedia(report: FeatureReport, feature: int) -> str | None:
    """The feature's Neuronpedia URL where the SAE has one (the report lists URLs by feature)."""
    for f in report.top:
        if f.neuronpedia_url:
            return f.neuronpedia_url.rsplit("/", 1)[0] + f"/{feature}"
    return None

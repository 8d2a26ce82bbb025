"""The Neuronpedia / circuit-tracer graph format (``schema_version`` 1), typed: the pydantic
models below are the one statement of the schema, which the exporter fills and the tests check
exports against. They follow circuit-tracer's ``frontend/graph_models.py`` (``Metadata``,
``QParams``, ``Node``) and Neuronpedia's upload schema (``info``, ``generation_settings``,
``pruning_settings``, links with ``source``/``target``/``weight``)."""

from __future__ import annotations

import json
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict

from circuitmap.graph.explorer_data import supernode_list


class _Strict(BaseModel):
    """A part of the format: a field it does not name is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Generator(_Strict):
    name: str
    version: str


class Info(_Strict):
    description: str
    creator_name: str
    generator: Generator


class Metadata(_Strict):
    slug: str
    scan: str
    transcoder_list: list[str]  # the SAEs the features come from
    prompt_tokens: list[str]  # at least two: the viewers need them
    prompt: str
    schema_version: int = 1
    info: Info
    generation_settings: dict[str, Any]  # the map's settings (graph attributes)
    pruning_settings: dict[str, Any]  # thresholds and what pruning hid
    node_threshold: float | None = None


class QParams(_Strict):
    pinnedIds: list[str]  # noqa: N815 (the format's names)
    supernodes: list[list[str]]  # [label, node_id, ...]
    linkType: str  # noqa: N815
    clickedId: str  # noqa: N815
    sg_pos: str


class Node(_Strict):
    node_id: str  # "{layer}_{number}_{ctx}", or "err_{layer}_{ctx}"
    feature: int  # Cantor pair of layer and number; -1 for error nodes
    layer: str
    ctx_idx: int
    feature_type: str  # "sae feature", "mlp neuron" or "mlp reconstruction error"
    jsNodeId: str  # noqa: N815
    clerp: str  # the node's label
    influence: float | None
    activation: float | None


class Link(_Strict):
    source: str  # a node_id
    target: str
    weight: float


class NeuronpediaGraph(_Strict):
    metadata: Metadata
    qParams: QParams  # noqa: N815
    nodes: list[Node]
    links: list[Link]


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


# Neuronpedia ids number a layer's MLP neurons after every SAE feature index (SAE widths stay
# far below 2^24), so a neuron and the feature of the same layer and index never share an id.
NEURON_OFFSET = 1 << 24


def _description(g: dict[str, Any]) -> str:
    """The Neuronpedia export's description: what its edges mean and the whole circuit's
    held-out faithfulness."""
    figures = (
        ("F(C)", "circuit_circuit"),
        ("F(C) without error nodes", "circuit_no_error"),
        ("F(M minus C)", "circuit_complement"),
    )
    return (
        f"circuitmap circuit of {g['targets']}: edges are ablation effects (how much of "
        "the target stops flowing through the destination when the source is removed "
        "on the effect prompts, relative to the target), not attributions; nodes "
        "aggregate every token of the prompts and sit at the strongest build prompt's "
        "peak token. Held-out faithfulness of the whole circuit: "
        + ", ".join(f"{name} {g[k]:.2f}" for name, k in figures if k in g)
    )


def neuronpedia_graph(graph: nx.DiGraph, slug: str, scan: str | None = None) -> NeuronpediaGraph:
    """The circuit-tracer / Neuronpedia graph format (``schema_version`` 1): every node is
    placed at the strongest build prompt's last token (where the target peaks and is read),
    although it aggregates every token of the prompts; ``scan`` defaults to the model's.
    Node ids (``node_id``, ``jsNodeId``, the Cantor-paired ``feature``) are unique across node
    kinds; error nodes share ``feature`` -1 as circuit-tracer's do. The graph's supernodes (graph
    attribute ``supernodes``) go to ``qParams.supernodes``."""
    g = graph.graph
    tokens = json.loads(g.get("prompt_tokens", "[]"))
    if len(tokens) < 2:  # the viewers need two tokens at least
        tokens = ["<bos>", *tokens] if tokens else ["<bos>", g["targets"]]
    ctx = len(tokens) - 1
    ids, nodes = {}, []
    for node, d in graph.nodes(data=True):
        layer, index = d["layer"], d["index"]
        if d["kind"] == "error":
            ids[node] = f"err_{layer}_{ctx}"
            feature, kind = -1, "mlp reconstruction error"
        else:
            number = index + NEURON_OFFSET if d["kind"] == "neuron" else index
            ids[node] = f"{layer}_{number}_{ctx}"
            feature = _cantor(layer, number)
            kind = "mlp neuron" if d["kind"] == "neuron" else "sae feature"
        nodes.append(
            Node(
                node_id=ids[node],
                feature=feature,
                layer=str(layer),
                ctx_idx=ctx,
                feature_type=kind,
                jsNodeId=f"{ids[node]}-0",
                clerp=d["label"],
                influence=1.0 if d["kind"] == "neuron" else d.get("influence"),
                activation=d.get("activation"),
            )
        )
    links = [
        Link(source=ids[u], target=ids[v], weight=d["weight"]) for u, v, d in graph.edges(data=True)
    ]
    targets = [ids[t] for t in g["targets"].split(",") if t in ids]
    settings: tuple[str, ...] = ("select", "ablation", "prompts", "n_prompts")
    settings += ("effect_prompts", "n_heldout")
    settings += ("max_features", "share", "lr", "lr_units", "steps", "top_k", "restarts")
    settings += ("controls",)
    pruning: tuple[str, ...] = ("node_threshold", "edge_threshold", "nodes_total", "nodes_hidden")
    pruning += ("edges_total", "edges_hidden", "influence_hidden")
    metadata = Metadata(
        slug=slug,
        scan=scan or g.get("scan", g["model"]),
        transcoder_list=sorted({d["sae"] for _, d in graph.nodes(data=True) if "sae" in d}),
        prompt_tokens=tokens,
        prompt=g.get("prompt", ""),
        schema_version=1,
        info=Info(
            description=_description(g),
            creator_name="circuitmap",
            generator=Generator(name="circuitmap", version="0.1.0"),
        ),
        generation_settings={k: g[k] for k in settings if k in g},
        pruning_settings={k: g[k] for k in pruning if k in g},
    )
    if "node_threshold" in g:
        metadata.node_threshold = g["node_threshold"]
    supernodes = supernode_list(graph)
    circuit = [ids[n] for n, d in graph.nodes(data=True) if d.get("in_circuit")]
    q_params = QParams(
        pinnedIds=list(dict.fromkeys([*targets, *circuit])),  # the targets, the circuit
        supernodes=[[label, *(ids[m] for m in members)] for label, *members in supernodes],
        linkType="both",
        clickedId=targets[0] if targets else "",
        sg_pos="",
    )
    return NeuronpediaGraph(metadata=metadata, qParams=q_params, nodes=nodes, links=links)


def neuronpedia_json(graph: nx.DiGraph, slug: str, scan: str | None = None) -> dict[str, Any]:
    """:func:`neuronpedia_graph` as the JSON-ready dict the export writes (a field never set,
    such as ``node_threshold`` of an unpruned graph, is left out)."""
    return neuronpedia_graph(graph, slug, scan).model_dump(exclude_unset=True)


def graph_list(data: dict[str, Any]) -> dict[str, Any]:
    """``graph-metadata.json``: the list circuit-tracer's local server reads beside the graphs
    (``data``: an export of :func:`neuronpedia_json`)."""
    m = data["metadata"]
    keys = ("slug", "scan", "prompt_tokens", "prompt")
    return {"graphs": [{**{k: m[k] for k in keys}, "title_prefix": ""}]}

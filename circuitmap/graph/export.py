"""Writing a circuit graph: interactive HTML (pyvis), GraphML, GEXF, node-link JSON, CSV tables
and the Neuronpedia / circuit-tracer graph JSON. Every file is written atomically."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx

from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import atomic_write_text, read_json
from circuitmap.graph.explorer import circuit_html
from circuitmap.graph.explorer_data import supernode_list

FORMATS = ("html", "graphml", "gexf", "json", "csv", "neuronpedia")


def node_link_json(graph: nx.DiGraph) -> str:
    """networkx node-link JSON (edge key set explicitly: its default changed across releases)."""
    return json.dumps(nx.node_link_data(graph, edges="links"), indent=1, ensure_ascii=False)


def load_graph(path: Path) -> nx.DiGraph:
    try:
        return nx.node_link_graph(read_json(path), directed=True, edges="links")
    except (KeyError, TypeError, AttributeError, nx.NetworkXError) as exc:
        raise CircuitmapError(f"cannot read graph {path}: not a node-link graph ({exc})") from None


def _kind(value: Any) -> str:
    """The GraphML/GEXF type a scalar attribute value is written as."""
    if isinstance(value, bool):
        return "boolean"
    return "int" if isinstance(value, int) else "float" if isinstance(value, float) else "string"


def _missing(value: Any) -> bool:
    """A value that stands for nothing measured: None, "", NaN or infinity."""
    return value is None or value == "" or (isinstance(value, float) and not math.isfinite(value))


def _left_off(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy without missing values (see :func:`_missing`) on the graph, its nodes and edges."""
    kept = graph.copy()
    nodes = (d for _, d in kept.nodes(data=True))
    edges = (d for *_, d in kept.edges(data=True))
    for attrs in [kept.graph, *nodes, *edges]:
        for key in [k for k, v in attrs.items() if _missing(v)]:
            del attrs[key]
    return kept


def _flat(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy that GraphML/GEXF readers accept: missing values are left off (:func:`_left_off`)
    rather than written as "" or "nan", lists and dicts become JSON text, and each attribute has
    one type across nodes (or edges): float where ints and floats mix, string where any other
    kinds mix (a number on one node and a text on another)."""
    flat = _left_off(graph)
    groups = [
        [flat.graph],
        [d for _, d in flat.nodes(data=True)],
        [d for *_, d in flat.edges(data=True)],
    ]
    for group in groups:
        for attrs in group:
            for key, value in list(attrs.items()):
                if isinstance(value, list | dict | tuple):  # GraphML/GEXF hold scalars only
                    attrs[key] = json.dumps(value, ensure_ascii=False, default=str)
        kinds: dict[str, set[str]] = {}
        for attrs in group:
            for key, value in attrs.items():
                kinds.setdefault(key, set()).add(_kind(value))
        for attrs in group:
            for key, value in attrs.items():
                if kinds[key] == {"int", "float"}:
                    attrs[key] = float(value)
                elif len(kinds[key]) > 1:
                    attrs[key] = str(value)
    return flat


def _gexf(graph: nx.DiGraph) -> str:
    """GEXF with the graph's own attributes (model, targets, faithfulness, pruning), which
    GEXF has no place for, as JSON in ``<meta><description>``."""
    flat = _flat(graph)
    text = "\n".join(nx.generate_gexf(flat))
    about = html.escape(json.dumps(flat.graph, ensure_ascii=False, allow_nan=False), quote=False)
    return text.replace("</meta>", f"<description>{about}</description></meta>", 1)


def _one_line(value: Any) -> Any:
    return value.replace("\r", "\\r").replace("\n", "\\n") if isinstance(value, str) else value


def _csv(rows: list[dict[str, Any]]) -> str:
    """A table with one line per row: newlines inside texts are written as ``\\n``."""
    keys = sorted({key for row in rows for key in row})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _one_line(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


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


def neuronpedia_json(graph: nx.DiGraph, slug: str, scan: str | None = None) -> dict[str, Any]:
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
            {
                "node_id": ids[node],
                "feature": feature,
                "layer": str(layer),
                "ctx_idx": ctx,
                "feature_type": kind,
                "jsNodeId": f"{ids[node]}-0",
                "clerp": d["label"],
                "influence": 1.0 if d["kind"] == "neuron" else d.get("influence"),
                "activation": d.get("activation"),
            }
        )
    links = [
        {"source": ids[u], "target": ids[v], "weight": d["weight"]}
        for u, v, d in graph.edges(data=True)
    ]
    targets = [ids[t] for t in g["targets"].split(",") if t in ids]
    settings: tuple[str, ...] = ("select", "ablation", "prompts", "n_prompts")
    settings += ("effect_prompts", "n_heldout")
    settings += ("max_features", "share", "lr", "lr_units", "steps", "top_k", "restarts")
    settings += ("controls",)
    pruning: tuple[str, ...] = ("node_threshold", "edge_threshold", "nodes_total", "nodes_hidden")
    pruning += ("edges_total", "edges_hidden", "influence_hidden")
    metadata = {
        "slug": slug,
        "scan": scan or g.get("scan", g["model"]),
        "transcoder_list": sorted({d["sae"] for _, d in graph.nodes(data=True) if "sae" in d}),
        "prompt_tokens": tokens,
        "prompt": g.get("prompt", ""),
        "schema_version": 1,
        "info": {
            "description": _description(g),
            "creator_name": "circuitmap",
            "generator": {"name": "circuitmap", "version": "0.1.0"},
        },
        "generation_settings": {k: g[k] for k in settings if k in g},
        "pruning_settings": {k: g[k] for k in pruning if k in g},
    }
    if "node_threshold" in g:
        metadata["node_threshold"] = g["node_threshold"]
    supernodes = supernode_list(graph)
    circuit = [ids[n] for n, d in graph.nodes(data=True) if d.get("in_circuit")]
    q_params = {
        "pinnedIds": list(dict.fromkeys([*targets, *circuit])),  # the targets, the circuit
        "supernodes": [[label, *(ids[m] for m in members)] for label, *members in supernodes],
        "linkType": "both",
        "clickedId": targets[0] if targets else "",
        "sg_pos": "",
    }
    return {"metadata": metadata, "qParams": q_params, "nodes": nodes, "links": links}


def graph_list(data: dict[str, Any]) -> dict[str, Any]:
    """``graph-metadata.json``: the list circuit-tracer's local server reads beside the graphs."""
    m = data["metadata"]
    keys = ("slug", "scan", "prompt_tokens", "prompt")
    return {"graphs": [{**{k: m[k] for k in keys}, "title_prefix": ""}]}


def export(
    graph: nx.DiGraph,
    folder: Path,
    formats: tuple[str, ...] = FORMATS,
    stem: str = "circuit",
    scan: str | None = None,
) -> list[Path]:
    """Write ``graph`` in each of ``formats`` into ``folder``; returns the files written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise CircuitmapError(
            f"unknown export format {', '.join(unknown)}: valid formats are {', '.join(FORMATS)}"
        )
    written = []

    def write(name: str, text: str) -> None:
        atomic_write_text(folder / name, text)
        written.append(folder / name)

    for fmt in formats:
        if fmt == "html":
            write(f"{stem}.html", circuit_html(graph))
        elif fmt == "graphml":
            write(f"{stem}.graphml", "\n".join(nx.generate_graphml(_flat(graph))))
        elif fmt == "gexf":
            write(f"{stem}.gexf", _gexf(graph))
        elif fmt == "json":
            write(f"{stem}.json", node_link_json(_left_off(graph)))
        elif fmt == "csv":
            write(f"{stem}_nodes.csv", _csv([{"id": n, **d} for n, d in graph.nodes(data=True)]))
            write(
                f"{stem}_edges.csv",
                _csv([{"source": u, "target": v, **d} for u, v, d in graph.edges(data=True)]),
            )
        elif fmt == "neuronpedia":  # also loads in circuit-tracer's local server as is
            data = neuronpedia_json(graph, slug=f"{stem}_neuronpedia", scan=scan)
            write(f"{stem}_neuronpedia.json", json.dumps(data, indent=1, allow_nan=False))
            write("graph-metadata.json", json.dumps(graph_list(data), indent=1))
    return written

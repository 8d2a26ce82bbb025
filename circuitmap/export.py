"""Writing a circuit graph: interactive HTML (pyvis), GraphML, GEXF, node-link JSON, CSV tables
and the Neuronpedia / circuit-tracer graph JSON. Every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import CircuitmapError
from .explorer import circuit_html
from .storage import atomic_write_text

FORMATS = ("html", "graphml", "gexf", "json", "csv", "neuronpedia")
GRAPH_FILE = "graph.json"  # the full, unpruned graph of a map run


def node_link_json(graph: nx.DiGraph) -> str:
    """networkx node-link JSON (edge key set explicitly: its default changed across releases)."""
    return json.dumps(nx.node_link_data(graph, edges="links"), indent=1, ensure_ascii=False)


def load_graph(path: Path) -> nx.DiGraph:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return nx.node_link_graph(data, directed=True, edges="links")
    except (OSError, json.JSONDecodeError, KeyError, nx.NetworkXError) as exc:
        raise CircuitmapError(f"cannot read graph {path}: {exc}") from exc


def _flat(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy whose attributes GraphML/GEXF accept (no None; floats that are finite)."""
    flat = graph.copy()
    for attrs in [
        flat.graph,
        *(d for _, d in flat.nodes(data=True)),
        *(d for *_, d in flat.edges(data=True)),
    ]:
        for key, value in list(attrs.items()):
            if value is None:
                attrs[key] = ""
            elif isinstance(value, float) and not math.isfinite(value):
                attrs[key] = str(value)
    return flat


def _csv(rows: list[dict[str, Any]]) -> str:
    keys = sorted({key for row in rows for key in row})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


_FEATURE_TYPES = {"neuron": "mlp neuron", "feature": "sae feature", "error": "sae error"}


def neuronpedia_json(graph: nx.DiGraph) -> dict[str, Any]:
    """The circuit-tracer / Neuronpedia graph format (metadata, nodes, links)."""
    g = graph.graph
    slug = "circuitmap-" + g["targets"].replace(",", "_")
    nodes = []
    for i, (node, d) in enumerate(graph.nodes(data=True)):
        is_target = d["kind"] == "neuron"
        nodes.append(
            {
                "node_id": node,
                "feature": d["index"],
                "layer": str(d["layer"]),
                "ctx_idx": 0,
                "feature_type": _FEATURE_TYPES[d["kind"]],
                "jsNodeId": f"{node}-{i}",
                "clerp": d["label"] if is_target else f"{d['label']}: {d.get('patchscope', '')}",
                "activation": d.get("activation"),
                "influence": d.get("influence"),
            }
        )
    links = [
        {"source": u, "target": v, "weight": d["weight"]} for u, v, d in graph.edges(data=True)
    ]
    metadata = {
        "slug": slug,
        "scan": g["model"],
        "prompt": "",
        "info": {"creator": "circuitmap", **g},
    }
    return {"metadata": metadata, "nodes": nodes, "links": links}


def export(
    graph: nx.DiGraph, folder: Path, formats: tuple[str, ...] = FORMATS, stem: str = "circuit"
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
            write(f"{stem}.gexf", "\n".join(nx.generate_gexf(_flat(graph))))
        elif fmt == "json":
            write(f"{stem}.json", node_link_json(graph))
        elif fmt == "csv":
            write(f"{stem}_nodes.csv", _csv([{"id": n, **d} for n, d in graph.nodes(data=True)]))
            write(
                f"{stem}_edges.csv",
                _csv([{"source": u, "target": v, **d} for u, v, d in graph.edges(data=True)]),
            )
        elif fmt == "neuronpedia":
            write(f"{stem}_neuronpedia.json", json.dumps(neuronpedia_json(graph), indent=1))
    return written

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
from circuitmap.graph.neuronpedia import graph_list, neuronpedia_json

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

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
from pyvis.network import Network

from .errors import CircuitmapError
from .storage import atomic_write_text

FORMATS = ("html", "graphml", "gexf", "json", "csv", "neuronpedia")
GRAPH_FILE = "graph.json"  # the full, unpruned graph of a map run
_X_STEP, _Y_STEP = 260, 110


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
                "feature_type": "mlp neuron" if is_target else "sae feature",
                "jsNodeId": f"{node}-{i}",
                "clerp": d["label"] if is_target else f"{d['label']}: {d.get('patchscope', '')}",
                "activation": d.get("activation"),
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


def _tooltip(d: dict[str, Any]) -> str:
    """Plain text (vis-network shows string titles as text, so nothing in it is markup)."""
    if d["kind"] == "neuron":
        return f"{d['label']}\ntarget neuron"
    lines = [
        d["label"],
        f"activation on X: {d['activation']:.2f} (Mean Vector: {d['mean_activation']:.2f})",
        f"target reached from layer {d['layer']}: {d['layer_activation']:.2f}",
        *(
            [f"back in {d['restart_agreement']:.0%} of random restarts"]
            if "restart_agreement" in d
            else []
        ),
        f"Patchscope (layer {d['layer']}): {d['patchscope']!r}",
    ]
    if "causal_description" in d:
        flag = "  ⚠ contradicts the label" if d["label_flagged"] else ""
        lines += [
            f"label: {d['imported_label'] or '(none imported)'}",
            f"top snippets: {d['snippets']}",
            f"causal (Patchscope of the feature): {d['causal_description']!r}",
            f"label similarity {d['label_similarity']:.2f}{flag}",
        ]
    if d.get("neuronpedia"):
        lines.append(d["neuronpedia"])
    return "\n".join(lines)


def _heading(graph: nx.DiGraph) -> str:
    """Title and legend (escaped: the pyvis template inserts the heading as raw HTML)."""
    g = {k: html.escape(str(v)) for k, v in graph.graph.items()}
    hidden = ""
    if "edges_hidden" in graph.graph:
        hidden = (
            f" · threshold {g['threshold']}: {g['edges_hidden']} of {g['edges_total']} edges "
            f"and {g['nodes_hidden']} features hidden"
        )
    return (
        f"<div style='font:15px sans-serif'>circuitmap · {g['model']} · "
        f"{_target_choice(graph)} · layers {g['layers']}</div>"
        f"<div style='font:12px sans-serif;color:#444'>lr {g['lr']} ({g['lr_units']}), "
        f"{g['steps']} steps · top {g['top_k']} features · {g['ablation']} ablation on X and "
        f"{g['n_prompts']} prompts{hidden}<br>"
        "<span style='color:#2b7bba'>●</span> SAE feature (size: activation on X) "
        "<span style='color:#d7301f'>●</span> target neuron "
        "<span style='color:#1a9850'>→</span> ablating the source lowers the destination "
        "<span style='color:#d73027'>→</span> raises it (width: relative effect)</div>"
    )


def _target_choice(graph: nx.DiGraph) -> str:
    """The target, or with several targets a menu that shows one target's circuit at a time."""
    targets = graph.graph["targets"].split(",")
    if len(targets) == 1:
        return f"target {html.escape(targets[0])}"
    options = "".join(f"<option>{html.escape(t)}</option>" for t in targets)
    return (
        f"{len(targets)} targets, show <select id='target-filter'>"
        f"<option value=''>all</option>{options}</select>"
    )


# Hides the nodes and edges outside the chosen target's circuit (pyvis keeps the vis.js
# DataSets in the page's global `nodes` and `edges`).
_FILTER_SCRIPT = """<script>
document.getElementById('target-filter').addEventListener('change', function () {
  var chosen = this.value;
  function hide(item) {
    return {id: item.id, hidden: chosen !== '' && item.targets.split(',').indexOf(chosen) < 0};
  }
  nodes.update(nodes.get().map(hide));
  edges.update(edges.get().map(hide));
});
</script>"""


def circuit_html(graph: nx.DiGraph) -> str:
    """Interactive pyvis HTML, self-contained (vis.js inline): layers left to right, physics off."""
    net = Network(height="780px", width="100%", directed=True, cdn_resources="in_line")
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(graph.nodes(data=True), key=lambda item: -item[1].get("activation", 0)):
        by_layer.setdefault(d["layer"], []).append(node)
    top = max((d.get("activation", 0) for _, d in graph.nodes(data=True)), default=1) or 1
    for layer, nodes in by_layer.items():
        for rank, node in enumerate(nodes):
            d = graph.nodes[node]
            is_target = d["kind"] == "neuron"
            size = 30 if is_target else 8 + 25 * math.sqrt(max(d["activation"], 0) / top)
            net.add_node(
                node,
                label=d["label"],
                title=_tooltip(d),
                x=layer * _X_STEP,
                y=(rank - (len(nodes) - 1) / 2) * _Y_STEP,
                size=size,
                physics=False,
                color="#d7301f" if is_target else "#2b7bba",
                shape="dot",
                targets=d["targets"],
            )
    for u, v, d in graph.edges(data=True):
        skipped = graph.nodes[v]["layer"] - graph.nodes[u]["layer"] - 1  # layers jumped over
        net.add_edge(
            u,
            v,
            width=1 + 8 * min(abs(d["weight"]), 1),
            smooth={"type": "curvedCW", "roundness": min(0.12 * skipped, 0.5)},
            color="#1a9850" if d["weight"] >= 0 else "#d73027",
            title=f"{d['kind']}: relative effect {d['vector_relative']:+.3f} on X, "
            f"{d['prompt_relative']:+.3f} on prompts ({d['ablation']} ablation)",
            targets=d["targets"],
        )
    net.toggle_physics(False)
    page = net.generate_html()
    # The heading goes in once, above the canvas (the template would print it twice).
    page = page.replace("<body>", f"<body>\n{_heading(graph)}", 1)
    if "," in graph.graph["targets"]:
        page = page.replace("</body>", f"{_FILTER_SCRIPT}\n</body>", 1)
    # Multi-line plain-text tooltips.
    return page.replace(
        "</style>", ".vis-tooltip { white-space: pre-wrap; max-width: 520px; }\n</style>", 1
    )


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

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


def _figure(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _tooltip(d: dict[str, Any]) -> str:
    """Plain text (vis-network shows string titles as text, so nothing in it is markup)."""
    if d["kind"] == "neuron":
        return f"{d['label']}\ntarget neuron"
    lines = [
        d["label"],
        f"influence {d['influence']:+.3f} of the target (removed on the build prompts)",
        f"attribution {d['attribution']:+.3f}",
    ]
    if "p_value" in d:
        lines.append(
            f"vs controls: p {d['p_value']:.3f}, effect size {d['effect_size']:.1f}, "
            f"95% CI [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"
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
    lines += [
        f"target reached from layer {d['layer']}: {d['layer_activation']:.2f}",
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
    """Title, faithfulness and legend (escaped: the pyvis template inserts the heading as raw
    HTML)."""
    raw = graph.graph
    g = {k: html.escape(str(v)) for k, v in raw.items()}
    hidden = ""
    if "nodes_hidden" in raw:
        hidden = (
            f" · showing the features that carry {raw['node_threshold']:.0%} of each layer's "
            f"influence: {raw['nodes_hidden']} of {raw['nodes_total']} nodes and "
            f"{raw['edges_hidden']} of {raw['edges_total']} edges hidden"
        )
    faithful = ""
    if "completeness" in raw or "sufficiency" in raw:
        faithful = (
            f"<div style='font:13px sans-serif'>held-out faithfulness "
            f"({g.get('heldout_prompts', '?')} prompts, mean over layers): completeness "
            f"{_figure(raw.get('completeness'))} · sufficiency {_figure(raw.get('sufficiency'))} "
            f"(random features: {_figure(raw.get('random_completeness'))} / "
            f"{_figure(raw.get('random_sufficiency'))}) · error nodes carry "
            f"{_figure(raw.get('error_share'))} · all layers at once: sufficiency "
            f"{_figure(raw.get('joint_sufficiency'))}</div>"
        )
    return (
        f"<div style='font:15px sans-serif'>circuitmap · {g['model']} · "
        f"{_target_choice(graph)} · layers {g['layers']}</div>{faithful}"
        f"<div style='font:12px sans-serif;color:#444'>features chosen by {g['select']} on "
        f"{g['n_prompts']} {g['prompts']} prompts, {g['ablation']} ablation{hidden}<br>"
        "<span style='color:#2b7bba'>●</span> SAE feature (size: influence on the target) "
        "<span style='color:#999'>■</span> SAE error term "
        "<span style='color:#d7301f'>●</span> target neuron "
        "<span style='color:#1a9850'>→</span> removing the source lowers what flows through "
        "the destination <span style='color:#d73027'>→</span> raises it (width: share of the "
        "target)</div>"
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


_COLOURS = {"neuron": "#d7301f", "feature": "#2b7bba", "error": "#999999"}


def circuit_html(graph: nx.DiGraph) -> str:
    """Interactive pyvis HTML, self-contained (vis.js inline): layers left to right, the most
    influential features at the centre of each layer, physics off."""
    net = Network(height="780px", width="100%", directed=True, cdn_resources="in_line")
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(graph.nodes(data=True), key=lambda item: -item[1].get("influence", 0)):
        by_layer.setdefault(d["layer"], []).append(node)
    top = max((abs(d.get("influence", 0)) for _, d in graph.nodes(data=True)), default=1) or 1
    for layer, nodes in by_layer.items():
        for rank, node in enumerate(nodes):
            d = graph.nodes[node]
            size = 30 if d["kind"] == "neuron" else 8 + 25 * math.sqrt(abs(d["influence"]) / top)
            offset = (rank + 1) // 2 * (1 if rank % 2 else -1)  # 0, 1, -1, 2, -2, ...
            net.add_node(
                node,
                label=d["label"],
                title=_tooltip(d),
                x=layer * _X_STEP,
                y=offset * _Y_STEP,
                size=size,
                physics=False,
                color=_COLOURS[d["kind"]],
                shape="square" if d["kind"] == "error" else "dot",
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
            title=f"{d['kind']}: {d['weight']:+.3f} of the target",
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

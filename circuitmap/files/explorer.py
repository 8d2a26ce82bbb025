"""The interactive circuit page: the pyvis (vis.js) network, self-contained and offline, with an
explorer around it: a detail panel for the clicked node (its figures, the snippets where it fires
with the token marked, its layer's Patchscope decode, clickable tables of its edges), paths to
the target highlighted on hover or click, sliders for the influence and edge-weight thresholds,
a search box, the target menu of a merged map, and the faithfulness figures in the heading.

Everything a model or a user wrote reaches the page as data: the heading is HTML-escaped, the
tooltips are plain text, and the panel is built with ``textContent`` from a JSON block whose
``<``, ``>`` and ``&`` are escaped, so no generated text is ever parsed as markup or run.
"""

from __future__ import annotations

import html
import json
import math
from importlib.resources import files
from typing import Any

import networkx as nx
from pyvis.network import Network

_X_STEP, _Y_STEP = 260, 110


def _asset(name: str) -> str:
    """The explorer's script or style sheet, shipped in ``circuitmap/data``."""
    return files("circuitmap").joinpath("data", name).read_text(encoding="utf-8")


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


_COLOURS = {"neuron": "#d7301f", "feature": "#2b7bba", "error": "#999999"}


def _page_data(graph: nx.DiGraph) -> str:
    """The graph as JSON for the explorer script, safe inside a ``<script>`` element."""
    layers: dict[int, str] = {}
    for _, d in graph.nodes(data=True):
        if "patchscope" in d:
            layers.setdefault(d["layer"], d["patchscope"])

    def finite(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if not (isinstance(v, float) and not math.isfinite(v))}

    data = {"nodes": {node: finite(d) for node, d in graph.nodes(data=True)}, "layers": layers}
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def circuit_html(graph: nx.DiGraph) -> str:
    """Interactive pyvis HTML, self-contained (vis.js inline): layers left to right (each headed
    by its Patchscope decode), the most influential features in the middle of each layer, physics
    off; with the explorer of the module docstring."""
    net = Network(height="780px", width="100%", directed=True, cdn_resources="in_line")
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(graph.nodes(data=True), key=lambda item: -item[1].get("influence", 0)):
        by_layer.setdefault(d["layer"], []).append(node)
    top = max((abs(d.get("influence", 0)) for _, d in graph.nodes(data=True)), default=1) or 1
    tallest = max((len(nodes) for nodes in by_layer.values()), default=1)
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
        decode = next(
            (graph.nodes[n]["patchscope"] for n in nodes if "patchscope" in graph.nodes[n]), None
        )
        if decode is not None:  # the layer's gradient Patchscope, once, above its column
            net.add_node(
                f"layer:{layer}",
                label=f"L{layer}\n{decode[:18]}…" if len(decode) > 18 else f"L{layer}\n{decode}",
                title=f"layer {layer}, gradient Patchscope decode of X_{layer}:\n{decode}",
                x=layer * _X_STEP,
                y=-((tallest + 1) // 2 + 1) * _Y_STEP,
                shape="text",
                physics=False,
                font={"size": 20, "color": "#333"},
                targets="",
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
            cm_weight=d["weight"],
        )
    net.toggle_physics(False)
    page = net.generate_html()
    # The heading and controls go in once, above the canvas (the template would print it twice).
    page = page.replace("<body>", f"<body>\n{_heading(graph)}\n{_controls(graph)}", 1)
    script = (
        f'<script type="application/json" id="cm-data">{_page_data(graph)}</script>\n'
        f"<script>{_asset('explorer.js')}</script>"
    )
    page = page.replace("</body>", f"{_PANEL}\n{script}\n</body>", 1)
    return page.replace("</style>", f"{_asset('explorer.css')}\n</style>", 1)


def _controls(graph: nx.DiGraph) -> str:
    return (
        "<div id='cm-controls' style='font:12px sans-serif;margin:4px 0'>"
        "<label>search <input id='cm-search' size='28' placeholder='feature id or a word of its "
        "label'></label> "
        "<label>min |influence| <input id='cm-node-slider' type='range' min='0' max='100' "
        "value='0'> <span id='cm-node-value'>0</span></label> "
        "<label>min |edge weight| <input id='cm-edge-slider' type='range' min='0' max='100' "
        "value='0'> <span id='cm-edge-value'>0</span></label></div>"
    )


_PANEL = (
    "<div id='cm-panel'><p class='cm-hint'>Click a node to see where it fires, what it does "
    "to the target and its edges; hover a node to see its paths to the target.</p></div>"
)

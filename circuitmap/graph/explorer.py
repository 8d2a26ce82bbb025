"""The interactive circuit page, self-contained and offline: the layered graph drawn on one canvas
by ``data/explorer.js`` (layers left to right, each headed by its Patchscope decode; node size =
influence; error nodes as pale squares carrying their share), a side panel with each node's
dashboard (its figures, where it fires in the corpus and on the build prompts, its activation
histogram, the tokens it promotes, its causal decode, its edges), paths to the target highlighted
on hover or click, sliders for the influence and edge-weight thresholds, a search box, the target
menu of a merged map, collapsible supernodes, and the faithfulness figures in the heading.

The first view is the circuit: the nodes marked ``in_circuit`` (and the targets) when any node
carries that mark, else every node of the graph given; the rest sits behind a toggle. The view
is laid out to the canvas, so labels are drawn at 13 px at the default zoom.

Everything a model or a user wrote reaches the page as data: the heading is HTML-escaped, and
the tooltips and panel are set with ``textContent`` from a JSON block whose ``<``, ``>`` and
``&`` are escaped, so no generated text is ever parsed as markup or run.
"""

from __future__ import annotations

import html
from importlib.resources import files

import networkx as nx

from circuitmap.graph.explorer_data import Cut, fit_to_page, page_data


def _asset(name: str) -> str:
    """The explorer's script or style sheet, shipped in ``circuitmap/data``."""
    return files("circuitmap").joinpath("data", name).read_text(encoding="utf-8")


def _figure(value: object) -> str:
    return "–" if value is None else f"{value:.2f}"


def _faithfulness(raw: dict) -> str:
    """The heading's figures: the whole circuit's first, then the per-layer diagnostics."""
    lines = []
    prompts = html.escape(str(raw.get("heldout_prompts", "?")))
    if "circuit_circuit" in raw or "circuit_feature_nodes" in raw:
        lines.append(
            f"<div>whole circuit on {prompts} held-out prompts (sites "
            f"{html.escape(str(raw.get('circuit_sites', '?')))}, "
            f"{raw.get('circuit_feature_nodes', '?')} feature and "
            f"{raw.get('circuit_error_nodes', '?')} error nodes, every site edited at once): "
            f"F(C) {_figure(raw.get('circuit_circuit'))} · without its error nodes "
            f"{_figure(raw.get('circuit_no_error'))} · F(M∖C) "
            f"{_figure(raw.get('circuit_complement'))} · random features "
            f"{_figure(raw.get('circuit_random'))} (F(C) on the build prompts that chose it: "
            f"{_figure(raw.get('circuit_build'))})</div>"
        )
    if "completeness" in raw or "sufficiency" in raw:
        lines.append(
            f"<div>per layer ({prompts} prompts, each layer edited alone, mean over layers): "
            f"completeness {_figure(raw.get('completeness'))} · "
            f"sufficiency {_figure(raw.get('sufficiency'))} (random features: "
            f"{_figure(raw.get('random_completeness'))} / {_figure(raw.get('random_sufficiency'))})"
            f" · error nodes carry {_figure(raw.get('error_share'))}</div>"
        )
    return "".join(lines)


def _shown(graph: nx.DiGraph, cut: Cut | None) -> str:
    """What the page shows of the map: the circuit, the pruning, and an oversized export's cut."""
    raw = graph.graph
    circuit = [n for n, d in graph.nodes(data=True) if d.get("in_circuit")]
    parts = []
    if any("in_circuit" in d for _, d in graph.nodes(data=True)):
        parts.append(f"the circuit: {len(circuit)} nodes, the other ones behind the toggle")
    if "nodes_hidden" in raw:
        parts.append(
            f"exported: the features that carry {raw['node_threshold']:.0%} of each layer's "
            f"influence ({raw['nodes_hidden']} of {raw['nodes_total']} nodes and "
            f"{raw['edges_hidden']} of {raw['edges_total']} edges hidden)"
        )
    text = " · ".join(parts)
    if cut is not None:
        text += (
            f"<div class='cm-warn'>This export has {cut.nodes_total} nodes and "
            f"{cut.edges_total} edges, more than the page draws at speed: it shows the strongest "
            f"{cut.nodes_drawn} and {cut.edges_drawn}. <code>circuitmap export RUN "
            f"--node-threshold {cut.node_threshold} --edge-threshold {cut.edge_threshold}"
            "</code> exports about that much.</div>"
        )
    return text


def _heading(graph: nx.DiGraph, cut: Cut | None) -> str:
    """Title, faithfulness, what is shown and the legend (escaped)."""
    raw = graph.graph
    g = {k: html.escape(str(v)) for k, v in raw.items()}
    return (
        f"<div class='cm-title'>circuitmap · {g['model']} · {_target_choice(graph)} · layers "
        f"{g['layers']}</div>{_faithfulness(raw)}"
        f"<div class='cm-sub'>features chosen by {g['select']} on {g['n_prompts']} "
        f"{g['prompts']} prompts, {g['ablation']} ablation · {_shown(graph, cut)}<br>"
        "<span style='color:#2b7bba'>●</span> SAE feature (size: influence on the target) "
        "<span style='color:#1f5f99'>■</span> supernode "
        "<span style='color:#bbb'>■</span> SAE error term (its share of the target) "
        "<span style='color:#d7301f'>●</span> target neuron "
        "<span style='color:#1a9850'>—</span> removing the source lowers what flows through "
        "the destination <span style='color:#d73027'>—</span> raises it (width: share of the "
        "target; grey: through an error term)</div>"
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


def _controls(graph: nx.DiGraph) -> str:
    marked = any("in_circuit" in d for _, d in graph.nodes(data=True))
    outside = sum(
        1 for _, d in graph.nodes(data=True) if d["kind"] != "neuron" and not d.get("in_circuit")
    )
    toggle = (
        f"<label><input id='cm-outside' type='checkbox'> show the {outside} nodes outside the "
        "circuit</label> "
        if marked
        else ""
    )
    groups = "supernodes" in graph.graph and graph.graph["supernodes"] not in ("", "[]")
    group = "<label><input id='cm-group' type='checkbox'> collapse supernodes</label> "
    return (
        "<div id='cm-controls'>"
        "<label>search <input id='cm-search' size='24' placeholder='feature id or a word of its "
        "label'></label> "
        "<label>min |influence| <input id='cm-node-slider' type='range' min='0' max='100' "
        "value='0'> <span id='cm-node-value'>0</span></label> "
        "<label>min |edge weight| <input id='cm-edge-slider' type='range' min='0' max='100' "
        f"value='0'> <span id='cm-edge-value'>0</span></label> {toggle}"
        f"{group if groups else ''}<button id='cm-fit'>fit</button></div>"
    )


def circuit_html(graph: nx.DiGraph) -> str:
    """The explorer page of ``graph`` (see the module docstring), one self-contained HTML file."""
    drawn, cut = fit_to_page(graph)
    title = html.escape(f"circuitmap · {graph.graph.get('targets', '')}")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_asset('explorer.css')}</style></head><body>\n"
        f"<div id='cm-app'><div id='cm-head'>{_heading(graph, cut)}\n{_controls(drawn)}</div>\n"
        "<div id='cm-main'><canvas id='cm-canvas'></canvas><div id='cm-tip' hidden></div>"
        "</div></div>\n<div id='cm-panel'></div>\n"
        f"<script type='application/json' id='cm-data'>{page_data(drawn)}</script>\n"
        f"<script>{_asset('explorer.js')}</script>\n</body></html>\n"
    )

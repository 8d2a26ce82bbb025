"""The explorer's data block: compact, escaped, and cut with a notice when too big to draw."""

import json

import networkx as nx

from circuitmap.graph import explorer_data
from circuitmap.graph.explorer import circuit_html


def _chain(n_layers: int, width: int) -> nx.DiGraph:
    graph = nx.DiGraph(
        model="tiny",
        targets="L9.N0",
        layers="0",
        select="attribution",
        ablation="silent",
        prompts="corpus",
        n_prompts=2,
    )
    graph.add_node("L9.N0", kind="neuron", layer=9, index=0, label="Neuron 0 L9", targets="L9.N0")
    previous = []
    for layer in range(n_layers):
        here = [f"L{layer}.F{i}" for i in range(width)]
        for i, node in enumerate(here):
            graph.add_node(
                node,
                kind="feature",
                layer=layer,
                index=i,
                label=node,
                influence=(i + 1) / 100,
                targets="L9.N0",
            )
        for u in previous:
            for j, v in enumerate(here):
                graph.add_edge(u, v, weight=(j + 1) / 100, targets="L9.N0")
        previous = here
    return graph


def test_an_export_too_big_for_the_page_is_cut_and_says_which_thresholds_fit(monkeypatch):
    graph = _chain(3, 4)  # 13 nodes, 32 edges
    assert explorer_data.fit_to_page(graph) == (graph, None)
    monkeypatch.setattr(explorer_data, "MAX_NODES", 9)
    monkeypatch.setattr(explorer_data, "MAX_EDGES", 10)
    drawn, cut = explorer_data.fit_to_page(graph)
    assert drawn.number_of_nodes() == 9 and drawn.number_of_edges() <= 10
    assert "L9.N0" in drawn and "L0.F3" in drawn and "L0.F0" not in drawn  # strongest kept
    assert (cut.nodes_total, cut.edges_total) == (13, 32)
    assert 0 < cut.node_threshold < 1 and 0 < cut.edge_threshold < 1
    page = circuit_html(graph)
    assert "more than the page draws" in page
    assert f"--edge-threshold {cut.edge_threshold}" in page


def test_page_data_is_compact_and_escaped():
    graph = _chain(2, 2)
    graph.nodes["L0.F0"]["label"] = "</script><script>alert(1)</script> & more"
    text = explorer_data.page_data(graph)
    assert "</script>" not in text and "&" not in text
    data = json.loads(text)
    assert [n["id"] for n in data["nodes"]] == list(graph.nodes)
    assert len(data["edges"]["s"]) == graph.number_of_edges() and data["edge_targets"] == ["L9.N0"]
    assert data["nodes"][1]["label"].startswith("</script>")
    assert data["circuit"] is False


def test_a_layers_gradient_patchscope_and_its_check_are_sent_once_a_layer():
    graph = _chain(2, 2)
    layer = {
        "patchscope": "a definition <b>",
        "layer_level": 2.0,
        "restart_top1": 0.5,
        "x_features": "1,0",
        "x_ranks": "0,7",
        "x_overlap": 1.0,
        "circuit_decode": "the circuit's own",
    }
    for node in ("L0.F0", "L0.F1"):
        graph.nodes[node].update(layer)
    data = json.loads(explorer_data.page_data(graph))
    assert data["layers"] == {"0": layer}
    assert not any(key in node for node in data["nodes"] for key in layer)
    assert "restart_jaccard" not in data["layers"]["0"]  # not measured: absent, not 0

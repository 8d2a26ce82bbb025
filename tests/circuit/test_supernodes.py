"""Automatic supernodes on planted graphs: features with one role are grouped, others are not."""

import json

import networkx as nx

from circuitmap.graph.supernodes import add_supernodes, find_supernodes


def _feature(graph, node, influence, token, **extra):
    layer = int(node[1])
    graph.add_node(
        node,
        kind="feature",
        layer=layer,
        index=int(node.split("F")[1]),
        label=f"F{node.split('F')[1]} L{layer}: {token}",
        influence=influence,
        contexts=f"some text [[{token}]] | more text [[ {token.upper()}]]",
        targets="L3.N0",
        **extra,
    )


def _planted():
    """Layer 1 holds two planted roles, A (fed by L0.F0, feeding L2.F0, firing on "circle")
    and B (L0.F1 -> L2.F1, "radius"), two features each, and a loner C."""
    graph = nx.DiGraph()
    graph.add_node("L3.N0", kind="neuron", layer=3, index=0, label="Neuron 0 L3")
    _feature(graph, "L0.F0", 0.3, "x")
    _feature(graph, "L0.F1", 0.3, "y")
    for node, influence in (("L1.F1", 0.2), ("L1.F2", 0.18)):
        _feature(graph, node, influence, "circle")
        graph.add_edge("L0.F0", node, weight=0.3)
        graph.add_edge(node, "L2.F0", weight=influence * 2)
    for node, influence in (("L1.F3", 0.1), ("L1.F4", 0.12)):
        _feature(graph, node, influence, "radius")
        graph.add_edge("L0.F1", node, weight=0.2)
        graph.add_edge(node, "L2.F1", weight=influence * 2)
    _feature(graph, "L1.F5", 0.05, "the")
    graph.add_edge("L0.F0", "L1.F5", weight=0.01)
    graph.add_edge("L0.F1", "L1.F5", weight=0.05)
    graph.add_edge("L1.F5", "L2.F1", weight=-0.1)
    _feature(graph, "L2.F0", 0.4, "area")
    _feature(graph, "L2.F1", 0.3, "diameter")
    graph.add_edge("L2.F0", "L3.N0", weight=0.4)
    graph.add_edge("L2.F1", "L3.N0", weight=0.3)
    return graph


def test_planted_roles_are_grouped_and_labelled_from_their_members():
    groups = find_supernodes(_planted())
    assert [set(g.members) for g in groups] == [{"L1.F1", "L1.F2"}, {"L1.F3", "L1.F4"}]
    assert [g.label for g in groups] == ["L1 circle", "L1 radius"]
    assert groups[1].members == ("L1.F4", "L1.F3")  # strongest first


def test_a_feature_passed_on_to_the_next_layer_is_one_supernode_across_both():
    graph = _planted()
    graph.nodes["L2.F0"]["contexts"] = "text [[circle]]"  # L1's A features feed it and share it
    graph.nodes["L2.F0"]["label"] = "F0 L2: circle"
    groups = find_supernodes(graph)
    assert {"L1.F1", "L1.F2", "L2.F0"} in [set(g.members) for g in groups]
    assert "L1-2 circle" in [g.label for g in groups]


def test_circuit_membership_and_opposite_signs_keep_features_apart():
    graph = _planted()
    graph.nodes["L1.F1"]["in_circuit"] = True
    graph.nodes["L1.F2"]["in_circuit"] = False
    graph.nodes["L1.F3"]["influence"] = -0.1
    assert find_supernodes(graph) == []
    stored = add_supernodes(_planted()).graph["supernodes"]
    assert json.loads(stored) == [["L1 circle", "L1.F1", "L1.F2"], ["L1 radius", "L1.F4", "L1.F3"]]

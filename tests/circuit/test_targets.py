"""Several targets in one map: shared Mean Vectors and prompt pass, merged graph, CLI inputs."""

import networkx as nx
import pytest

from circuitmap.config import Target
from circuitmap.graph.export import load_graph
from circuitmap.mapping.run import run_map
from tiny import map_config

TWO = [Target(3, 5), Target(2, 7)]


@pytest.fixture(scope="module")
def two_target_run(tiny_map_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("two")
    config = map_config(tiny_map_setup, targets=TWO)
    run_map(config, run_dir, log=lambda m: None)
    return config, run_dir


def _same(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    return dict(a.nodes(data=True)) == dict(b.nodes(data=True)) and {
        (u, v): d for u, v, d in a.edges(data=True)
    } == {(u, v): d for u, v, d in b.edges(data=True)}


def target_subgraph(graph: nx.DiGraph, target: str) -> nx.DiGraph:
    """The part of a (merged) graph that belongs to the target with id ``target``."""
    nodes = [n for n, d in graph.nodes(data=True) if target in d["targets"].split(",")]
    sub = graph.subgraph(nodes).copy()
    sub.remove_edges_from(
        [(u, v) for u, v, d in sub.edges(data=True) if target not in d["targets"].split(",")]
    )
    return sub


def test_each_target_maps_as_it_would_alone(two_target_run, tiny_map_setup, tmp_path):
    config, run_dir = two_target_run
    for t in TWO:
        alone_dir = tmp_path / t.id
        run_map(map_config(tiny_map_setup, targets=[t]), alone_dir, log=lambda m: None)
        together = load_graph(run_dir / "targets" / t.id / "graph.json")
        assert _same(together, load_graph(alone_dir / "graph.json"))


def test_merged_graph_shares_feature_nodes(two_target_run):
    config, run_dir = two_target_run
    merged = load_graph(run_dir / "graph.json")
    parts = {t.id: load_graph(run_dir / "targets" / t.id / "graph.json") for t in TWO}
    assert merged.graph["targets"] == "L3.N5,L2.N7" and merged.graph["layers"] == "0,1,2"
    assert set(merged.nodes) == set(parts["L3.N5"].nodes) | set(parts["L2.N7"].nodes)
    shared = set(parts["L3.N5"].nodes) & set(parts["L2.N7"].nodes)
    for node in merged.nodes:
        owners = merged.nodes[node]["targets"].split(",")
        assert sorted(owners) == sorted(t for t, g in parts.items() if node in g)
    assert all(merged.nodes[n]["targets"] == "L3.N5,L2.N7" for n in shared)
    # Each target's part of the merged graph has exactly that target's nodes and edges.
    for t, part in parts.items():
        sub = target_subgraph(merged, t)
        assert set(sub.nodes) == set(part.nodes) and set(sub.edges) == set(part.edges)
    # A shared edge keeps the values of the target where its effect is largest.
    for u, v, d in merged.edges(data=True):
        owners = [parts[t].edges[u, v] for t in d["targets"].split(",")]
        assert abs(d["weight"]) == max(abs(o["weight"]) for o in owners)


def test_cli_takes_targets_from_flags_files_and_find(run_cli, tiny_map_setup, tmp_path):
    s = tiny_map_setup
    (tmp_path / "targets.txt").write_text("# two targets\n3:5\n\n2:7  # another\n")
    common = [
        *("--model", str(s["model"]), "--dataset", str(s["corpus"]), "--sae-dir", str(s["saes"])),
        *("--steps", "2", "--max-new-tokens", "2", "--n-prompts", "2", "--controls", "0"),
    ]
    result = run_cli(
        "map",
        *("--target", "3:5", "--targets-file", str(tmp_path / "targets.txt")),
        *("--find-layer", "3", "--find-top", "1", "--layers", "1-2"),
        *("--run-dir", str(tmp_path / "run"), *common),
    )
    assert result.exit_code == 0, result.output
    targets = load_graph(tmp_path / "run" / "graph.json").graph["targets"].split(",")
    assert targets[:2] == ["L3.N5", "L2.N7"] and len(targets) in (2, 3)  # 3:5 given twice
    assert targets[2:] == [] or targets[2].startswith("L3.N")
    assert result.output.count("strongest chain:") == len(targets)
    html = (tmp_path / "run" / "circuit.html").read_text()
    assert "id='target-filter'" in html
    for bad, message in (
        (["--target", "3"], "target '3' is not LAYER:NEURON like 12:1742"),
        (["--target", "9:1"], "target layer 9 is out of range"),
        (["--target", "3:5", "--layers", "3"], "upstream layer 3 must be below the target"),
        (["--target", "3:5", "--target", "1:2", "--layers", "2"], "no layer to map below"),
        (["--targets-file", str(tmp_path / "none.txt")], "cannot read targets file"),
        (["--neuron", "5"], "--target-layer and --neuron go together"),
        ([], "map needs a target"),
    ):
        out = run_cli("map", *bad, "--out", str(tmp_path / "bad"), *common)
        assert out.exit_code == 2 and message in out.output, (bad, out.output)
        assert "Traceback" not in out.output

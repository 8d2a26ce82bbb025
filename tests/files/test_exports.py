"""Exports that load where researchers open them: Neuronpedia / circuit-tracer (both real
definitions, in ../shared), Gephi / Cytoscape (GraphML, GEXF), spreadsheets (CSV)."""

import csv
import importlib.util
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from circuitmap.graph.export import export
from circuitmap.graph.neuronpedia import NEURON_OFFSET, NeuronpediaGraph
from circuitmap.mapping.run import run_map
from tiny import map_config

ROOT = Path(__file__).parents[2]
VALIDATOR = ROOT.parent / "shared" / "tools" / "validate_export.py"


def _validator():
    if not VALIDATOR.is_file():
        pytest.skip(f"{VALIDATOR} is not here (the shared folder beside the project)")
    spec = importlib.util.spec_from_file_location("validate_export", VALIDATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    schema = json.loads(
        (VALIDATOR.parent.parent / "schemas" / "neuronpedia_graph_schema.json").read_text()
    )
    return lambda path: module.check(path, module.load_models(), schema)


@pytest.fixture(scope="module")
def mapped(tiny_map_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("exports")
    graph, _ = run_map(map_config(tiny_map_setup), run_dir, log=lambda m: None)
    return graph, run_dir


def test_neuronpedia_export_passes_circuit_tracer_and_neuronpedia_checks(mapped):
    graph, run_dir = mapped
    check = _validator()
    path = run_dir / "circuit_neuronpedia.json"
    assert check(path) == []
    data = json.loads(path.read_text())
    meta = data["metadata"]
    assert meta["schema_version"] == 1 and len(meta["prompt_tokens"]) >= 2
    ctx = len(meta["prompt_tokens"]) - 1
    pinned = data["qParams"]["pinnedIds"]  # the target first, then the whole circuit's nodes
    assert pinned[0] == f"3_{5 + NEURON_OFFSET}_{ctx}" and len(pinned) == len(set(pinned)) > 1
    assert set(pinned) <= {n["node_id"] for n in data["nodes"]}
    assert "ablation effects" in meta["info"]["description"]
    assert all("influence" in n for n in data["nodes"])
    # circuit-tracer's local server reads <slug>.json listed in graph-metadata.json.
    listed = json.loads((run_dir / "graph-metadata.json").read_text())["graphs"]
    assert [g["slug"] for g in listed] == [meta["slug"]]
    assert (run_dir / f"{meta['slug']}.json").is_file()


def test_supernodes_go_to_the_neuronpedia_export_which_stays_valid(mapped, tmp_path):
    graph, _ = mapped
    assert "supernodes" in graph.graph  # the map groups its exported graph
    graph = graph.copy()
    features = [n for n, d in graph.nodes(data=True) if d["kind"] == "feature"][:3]
    graph.graph["supernodes"] = json.dumps([["L1 group", *features]])
    export(graph, tmp_path, ("neuronpedia",))
    path = tmp_path / "circuit_neuronpedia.json"
    assert _validator()(path) == []
    data = json.loads(path.read_text())
    ((label, *members),) = data["qParams"]["supernodes"]
    assert label == "L1 group" and len(members) == 3
    assert set(members) <= {n["node_id"] for n in data["nodes"]}


def test_committed_examples_load_in_both_viewers():
    check = _validator()
    examples = sorted((ROOT / "graphs").glob("*/circuit_neuronpedia.json"))
    assert examples, "graphs/ has no example exports"
    for path in examples:
        assert check(path) == [], path


def _messy_graph():
    graph = nx.DiGraph(model="tiny", targets="L1.N0", completeness=0.5, missing=None)
    graph.add_node("a", kind="feature", layer=0, index=1, influence=1, text="two\nlines", sae=None)
    graph.add_node("b", kind="feature", layer=0, index=2, influence=0.25, text="x", sae="s")
    graph.add_node("c", kind="neuron", layer=1, index=0, influence=float("nan"), text="y")
    graph.add_edge("a", "c", weight=1, kind="k")
    graph.add_edge("b", "c", weight=0.5, kind="k")
    return graph


def test_gephi_files_have_one_type_per_attribute_and_no_placeholders(tmp_path):
    graph = _messy_graph()
    export(graph, tmp_path, ("graphml", "gexf", "csv"))
    for loaded in (
        nx.read_graphml(tmp_path / "circuit.graphml"),
        nx.read_gexf(tmp_path / "circuit.gexf"),
    ):
        assert loaded.nodes["a"]["influence"] == 1.0 and loaded.nodes["b"]["influence"] == 0.25
        assert "influence" not in loaded.nodes["c"] and "sae" not in loaded.nodes["a"]
        values = [v for _, _, d in loaded.edges(data=True) for v in d.values()]
        values += [v for _, d in loaded.nodes(data=True) for v in d.values()]
        assert all(v != "" and not (isinstance(v, float) and math.isnan(v)) for v in values)
    # GEXF keeps the graph's own attributes in its meta description.
    meta = ET.parse(tmp_path / "circuit.gexf").getroot()
    description = next(e for e in meta.iter() if e.tag.endswith("description")).text
    assert json.loads(description) == {"model": "tiny", "targets": "L1.N0", "completeness": 0.5}
    # CSV: one line per node, newlines inside texts escaped.
    lines = (tmp_path / "circuit_nodes.csv").read_text().splitlines()
    assert len(lines) == 1 + graph.number_of_nodes()
    rows = {r["id"]: r for r in csv.DictReader(lines)}
    assert rows["a"]["text"] == "two\\nlines"


def test_node_attributes_name_saes_without_local_folders(mapped):
    graph, run_dir = mapped
    saes = {d["sae"] for _, d in graph.nodes(data=True) if "sae" in d}
    assert saes and all(not s.startswith("/") for s in saes)
    assert saes == {f"saes/resid_pre_{layer}" for layer in (0, 1, 2)}


def test_view_serve_binds_localhost_and_serves_only_the_map(mapped):
    import http.client
    import threading

    from circuitmap.errors import CircuitmapError
    from circuitmap_cli.view import make_server

    _, run_dir = mapped
    server = make_server(run_dir / "circuit.html", _free_port())
    host, port = server.server_address
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        def get(path, host_header=f"127.0.0.1:{port}"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path, headers={"Host": host_header})
            response = conn.getresponse()
            return response.status, response.read()

        status, body = get("/circuit.html")
        assert status == 200 and body == (run_dir / "circuit.html").read_bytes()
        assert get("/")[0] == 200
        for other in ("/config.json", "/graph.json", "/../", "/targets/L3.N5/sweep.json"):
            assert get(other)[0] == 404, other
        assert get("/circuit.html", host_header="evil.example:80")[0] == 403
        with pytest.raises(CircuitmapError, match="cannot serve on 127.0.0.1"):
            make_server(run_dir / "circuit.html", port)  # in use
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(
        CircuitmapError, match="port 99999 is out of range: valid values are 1..65535"
    ):
        make_server(run_dir / "circuit.html", 99999)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_neuronpedia_exports_are_exactly_the_typed_schema(mapped):
    """The exporter and the committed examples fit :class:`NeuronpediaGraph` field for field:
    reading a file into the models and writing it back gives the same JSON."""
    _, run_dir = mapped
    paths = [run_dir / "circuit_neuronpedia.json"]
    paths += sorted((ROOT / "graphs").glob("*/circuit_neuronpedia.json"))
    for path in paths:
        data = json.loads(path.read_text())
        typed = NeuronpediaGraph.model_validate(data)
        assert typed.model_dump(exclude_unset=True) == data, path

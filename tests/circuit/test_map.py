"""The search driver, the graph and its exports on a tiny model with tiny SAEs."""

import csv
import json

import networkx as nx
import pytest
import torch
from reference import ablate
from sae_lens import SAE

from circuitmap.config import (
    ModelConfig,
    OptimConfig,
    SAESource,
    Target,
)
from circuitmap.errors import CircuitmapError
from circuitmap.graph.export import FORMATS, load_graph
from circuitmap.graph.prune import prune
from circuitmap.mapping.exports import reexport
from circuitmap.mapping.run import run_map
from circuitmap.method.ablation import feature_directions
from circuitmap.model.load import load_model
from tiny import map_config


@pytest.fixture(scope="module")
def full_run(tiny_map_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("map")
    config = map_config(tiny_map_setup)
    graph, files = run_map(config, run_dir, log=lambda m: None)
    return config, run_dir, graph, files


def test_graph_has_the_documented_schema(full_run):
    config, run_dir, _, _ = full_run
    graph = load_graph(run_dir / "graph.json")  # the full graph
    kinds = nx.get_node_attributes(graph, "kind")
    assert kinds["L3.N5"] == "neuron" and list(kinds.values()).count("neuron") == 1
    assert sorted(n for n, k in kinds.items() if k == "error") == ["L0.E", "L1.E", "L2.E"]
    features = [n for n, k in kinds.items() if k == "feature"]
    assert 0 < len(features) <= 3 * config.max_features
    for node in features:
        d = graph.nodes[node]
        assert node == f"L{d['layer']}.F{d['index']}" and 0 <= d["layer"] < 3
        assert {"influence", "attribution", "activation", "patchscope", "in_circuit"} <= set(d)
        assert {"label", "sae", "rank", "p_value", "controls"} <= set(d)
        assert "neuronpedia" not in d  # the tiny SAEs have no Neuronpedia page
    for u, v, d in graph.edges(data=True):
        source, dest = graph.nodes[u]["layer"], graph.nodes[v]["layer"]
        if v == "L3.N5":  # only the last mapped layer's nodes have edges to the target
            assert d["kind"] == "feature->target" and source == 2
        else:  # consecutive mapped layers only
            assert d["kind"] == "feature->feature" and dest == source + 1
        assert {"weight", "effect", "targets"} <= set(d)
    by_layer = {
        layer: [n for n in graph if graph.nodes[n]["layer"] == layer] for layer in (0, 1, 2)
    }
    # Every node of a layer has an edge to every node of the next layer (and layer 2 to the
    # target).
    expected = sum(len(by_layer[k]) * len(by_layer[k + 1]) for k in (0, 1)) + len(by_layer[2])
    assert graph.number_of_edges() == expected
    assert graph.graph["targets"] == "L3.N5" and graph.graph["layers"] == "0,1,2"
    assert {"completeness", "sufficiency", "joint_sufficiency", "heldout_prompts"} <= set(
        graph.graph
    )


def test_pruning_keeps_the_influential_nodes_and_records_what_it_hid(full_run):
    _, run_dir, _, _ = full_run
    graph = load_graph(run_dir / "graph.json")
    pruned = prune(graph, 0.5, 0.9)
    g = pruned.graph
    assert g["nodes_total"] == graph.number_of_nodes()
    assert g["nodes_hidden"] == graph.number_of_nodes() - pruned.number_of_nodes()
    assert g["edges_hidden"] == graph.number_of_edges() - pruned.number_of_edges()
    assert 0 <= g["influence_hidden"] <= 0.5 + 1e-9
    for layer in (0, 1, 2):
        shown = [  # nodes of the whole circuit stay whatever their influence
            abs(d["influence"])
            for _, d in pruned.nodes(data=True)
            if d["layer"] == layer and not d.get("in_circuit")
        ]
        hidden = [
            abs(d["influence"])
            for n, d in graph.nodes(data=True)
            if d["layer"] == layer and d["kind"] == "feature" and n not in pruned
        ]
        assert not hidden or not shown or min(shown) >= max(hidden)  # the most influential stay
    assert all(n in pruned for n, d in graph.nodes(data=True) if d.get("in_circuit"))
    assert all(n in pruned for n, d in graph.nodes(data=True) if d["kind"] != "feature")
    whole = prune(graph, 1.0, 1.0)
    assert whole.number_of_nodes() == graph.number_of_nodes()


def test_ablating_a_silent_feature_changes_nothing(tiny_map_setup):
    sae = SAE.load_from_disk(str(tiny_map_setup["saes"] / "resid_pre_1"))
    x = torch.randn(32) * 5
    feats = sae.encode(x[None])[0]
    silent = [int(i) for i in (feats == 0).nonzero()[:3, 0]]
    directions = feature_directions(sae, silent)
    torch.testing.assert_close(ablate(x, feats[silent], directions), x)


def test_ablating_all_features_removes_their_summed_contribution(tiny_map_setup):
    sae = SAE.load_from_disk(str(tiny_map_setup["saes"] / "resid_pre_1"))
    x = torch.randn(32) * 5
    feats = sae.encode(x[None])[0]
    top = feats.topk(4).indices.tolist()
    directions = feature_directions(sae, top)
    together = ablate(x, feats[top], directions)
    one_by_one = x.clone()
    for i, f in enumerate(top):
        one_by_one = ablate(one_by_one, feats[f : f + 1], directions[i : i + 1])
    torch.testing.assert_close(together, one_by_one, rtol=1e-4, atol=1e-4)
    # The SAE error term is kept: only the reconstruction loses those features.
    kept = feats.clone()
    kept[top] = 0
    expected = x - (sae.decode(feats[None])[0] - sae.decode(kept[None])[0])
    torch.testing.assert_close(together, expected, rtol=1e-4, atol=1e-4)


def test_exports_load_back_with_their_attributes(full_run):
    _, run_dir, graph, files = full_run
    names = {p.name for p in files}
    assert {
        "circuit.html",
        "circuit.graphml",
        "circuit.gexf",
        "circuit.json",
        "circuit_nodes.csv",
        "circuit_edges.csv",
        "circuit_neuronpedia.json",
        "graph.json",
    } <= names
    for loaded in (
        nx.read_graphml(run_dir / "circuit.graphml"),
        nx.read_gexf(run_dir / "circuit.gexf"),
    ):
        assert set(loaded.nodes) == set(graph.nodes)
        assert loaded.number_of_edges() == graph.number_of_edges()
        node = next(n for n, d in graph.nodes(data=True) if d["kind"] == "feature")
        assert loaded.nodes[node]["patchscope"] == graph.nodes[node]["patchscope"]
        assert float(loaded.nodes[node]["influence"]) == pytest.approx(
            graph.nodes[node]["influence"]
        )
    data = json.loads((run_dir / "circuit.json").read_text())
    assert nx.node_link_graph(data, edges="links").number_of_nodes() == graph.number_of_nodes()
    np = json.loads((run_dir / "circuit_neuronpedia.json").read_text())
    assert (
        len(np["nodes"]) == graph.number_of_nodes() and len(np["links"]) == graph.number_of_edges()
    )
    assert {"node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp"} <= set(
        np["nodes"][0]
    )


def test_interrupted_map_resumes_to_the_same_graph(full_run, tiny_map_setup, tmp_path):
    config, run_dir, _, _ = full_run

    def interrupt_after_first_layer(message):
        if "measured in" in message and "layer" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_map(config, tmp_path, log=interrupt_after_first_layer)
    layers = tmp_path / "targets" / "L3.N5" / "layers"
    assert [p.name for p in sorted(layers.glob("*.json"))] == ["layer_02.json"]
    messages = []
    run_map(config, tmp_path, log=messages.append)
    assert any("resuming: 1 of 1 target sweeps and 1 of 3 layers done" in m for m in messages)
    resumed, full = load_graph(tmp_path / "graph.json"), load_graph(run_dir / "graph.json")
    assert dict(resumed.nodes(data=True)) == dict(full.nodes(data=True))
    assert {(u, v): d for u, v, d in resumed.edges(data=True)} == {
        (u, v): d for u, v, d in full.edges(data=True)
    }


def test_reexport_needs_no_model_and_checks_formats(full_run, tmp_path):
    _, run_dir, _, _ = full_run
    graph, files = reexport(run_dir, ("graphml",), (1.0, 1.0), out=tmp_path)
    assert [p.name for p in files] == ["circuit.graphml"] and graph.graph["nodes_hidden"] == 0
    with pytest.raises(CircuitmapError, match="unknown export format png: valid formats are"):
        reexport(run_dir, ("png",), out=tmp_path)
    assert set(FORMATS) == {"html", "graphml", "gexf", "json", "csv", "neuronpedia"}


def test_cli_map_export_and_errors(run_cli, tiny_map_setup, tmp_path):
    s = tiny_map_setup
    common = [
        "--model",
        str(s["model"]),
        "--dataset",
        str(s["corpus"]),
        "--steps",
        "3",
        "--max-new-tokens",
        "2",
        "--n-prompts",
        "2",
    ]
    result = run_cli(
        "map",
        "--target-layer",
        "3",
        "--neuron",
        "5",
        "--layers",
        "1-2",
        "--sae-dir",
        str(s["saes"]),
        "--out",
        str(tmp_path / "runs"),
        *common,
    )
    assert result.exit_code == 0, result.output
    assert "strongest chain:" in result.output and "circuit.html" in result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    again = run_cli("map", "--resume", str(run_dir))
    assert again.exit_code == 0
    assert "resuming: 1 of 1 target sweeps and 2 of 2 layers done" in again.output
    exported = run_cli("export", str(run_dir), "--format", "gexf", "--out", str(tmp_path))
    assert exported.exit_code == 0 and (tmp_path / "circuit.gexf").is_file()
    no_saes = run_cli(
        "map",
        "--target-layer",
        "3",
        "--neuron",
        "5",
        "--layers",
        "1",
        "--sae-dir",
        str(tmp_path / "none"),
        "--no-train-saes",
        *common,
    )
    assert no_saes.exit_code == 2 and "circuitmap sae train --layers 1" in no_saes.output
    not_a_run = run_cli("map", "--resume", str(tmp_path))
    assert not_a_run.exit_code == 2 and "is not a circuitmap run folder" in not_a_run.output
    for bad in (["export", str(tmp_path / "nope")], ["view", str(tmp_path / "nope")]):
        out = run_cli(*bad)
        assert out.exit_code == 2 and "Traceback" not in out.output


def test_map_trains_the_saes_it_is_missing(run_cli, tiny_map_setup, tmp_path):
    s = tiny_map_setup
    saes = tmp_path / "saes"
    args = ["map", "--target-layer", "3", "--neuron", "5", "--layers", "1-2", "--steps", "2"]
    args += ["--model", str(s["model"]), "--dataset", str(s["corpus"]), "--max-new-tokens", "2"]
    result = run_cli(*args, "--sae-dir", str(saes), "--sae-tokens", "2000", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "no SAE for resid_pre layers [1, 2]" in result.output and "circuit.html" in result.output
    assert all((saes / f"resid_pre_{layer}" / "cfg.json").is_file() for layer in (1, 2))


def test_validate_faithfulness_measures_a_map_made_without_it(run_cli, tiny_map_setup, tmp_path):
    config = map_config(tiny_map_setup, layers=[1, 2], faithfulness=False)
    run_map(config, tmp_path, log=lambda m: None)
    assert "completeness" not in load_graph(tmp_path / "graph.json").graph
    result = run_cli("validate", "faithfulness", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "held-out prompts" in result.output and "all layers edited at once" in result.output
    graph = load_graph(tmp_path / "graph.json")
    assert {"completeness", "sufficiency", "error_share"} <= set(graph.graph)
    page = (tmp_path / "circuit.html").read_text()
    assert "whole circuit on" in page and "per layer (" in page
    assert "on the build prompts that chose it" in page
    bad = run_cli("validate", "faithfulness", str(tmp_path / "nope"))
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_map_leaves_the_curve_to_validate_faithfulness(run_cli, tiny_map_setup, tmp_path):
    from circuitmap.circuit.faithfulness import Faithfulness
    from circuitmap.files.layout import target_dir

    config = map_config(tiny_map_setup, layers=[1, 2])
    run_map(config, tmp_path, log=lambda m: None)
    folder = target_dir(tmp_path, config.targets[0])
    before = Faithfulness.load(folder)
    assert not before.has_curve and before.mean("completeness") is not None
    result = run_cli("validate", "faithfulness", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "the ranking cut at k features a layer" in result.output
    after = Faithfulness.load(folder)
    assert after.has_curve and after.mean("completeness") == pytest.approx(
        before.mean("completeness")
    )


def test_map_rejects_bad_layers(tiny_map_setup):
    config = map_config(tiny_map_setup, layers=[3])
    with pytest.raises(CircuitmapError, match="upstream layer 3 must be below the target layer 3"):
        run_map(config, tiny_map_setup["saes"].parent / "bad")


def test_restarts_from_the_same_seed_agree_exactly(tiny_map_setup):
    from circuitmap.method.restarts import restart_report
    from circuitmap.sae.store import load_layer_sae

    lm = load_model(ModelConfig(name=str(tiny_map_setup["model"])))
    layer_sae = load_layer_sae(
        1, 32, tiny_map_setup["saes"], "x", SAESource(sae_dir=str(tiny_map_setup["saes"]))
    )
    mean, corpus = torch.randn(32) * 10, torch.randn(10, 32) * 10
    run = lambda: restart_report(  # noqa: E731
        lm,
        layer_sae,
        target=Target(3, 5),
        mean=mean,
        corpus=corpus,
        config=OptimConfig(steps=4),
        n_restarts=3,
    )
    first, second = run(), run()
    assert first == second
    assert len(first.top_sets) == 4 and 0 <= first.top1_agreement <= 1 and 0 <= first.jaccard <= 1
    assert set(first.agreement) == set(first.top_sets[0])


def test_restarts_count_what_each_ascent_adds_to_its_own_start(tiny_map_setup):
    """A corpus start's own features say where it began: only what its ascent added counts."""
    from circuitmap.method.restarts import added_codes, compare_starts
    from circuitmap.sae.store import load_layer_sae

    source = SAESource(sae_dir=str(tiny_map_setup["saes"]))
    layer_sae = load_layer_sae(1, 32, tiny_map_setup["saes"], "x", source)
    starts = torch.randn(3, 32) * 30  # (starts, d_model): their codes differ widely
    with torch.no_grad():
        own = layer_sae.sae.encode(starts).float()  # (starts, d_sae)
    assert (own > 0.5).any()  # the starts have features of their own, above what was added
    codes = own.clone()
    codes[:, 3] += 0.5  # every ascent added feature 3, a little
    added = added_codes(layer_sae, starts, codes, starts)
    torch.testing.assert_close(added[:, 3], torch.full((3,), 0.5), rtol=1e-4, atol=1e-4)
    report = compare_starts(1, added, torch.ones(3), top_k=2)
    assert [top[0] for top in report.top_sets] == [3, 3, 3] and report.top1_agreement == 1.0


@pytest.mark.parametrize("space", ["resid", "sae"])
def test_one_batch_over_layers_and_starts_equals_separate_runs(tiny_map_setup, space):
    """Rows injecting at different layers with different lrs follow their own paths."""
    from circuitmap.method.optimise import optimise_rows
    from circuitmap.method.x_space import LayerSpace
    from circuitmap.sae.store import load_layer_sae

    lm = load_model(ModelConfig(name=str(tiny_map_setup["model"])))
    source = SAESource(sae_dir=str(tiny_map_setup["saes"]))
    saes = {m: load_layer_sae(m, 32, tiny_map_setup["saes"], "x", source).sae for m in (0, 1, 2)}
    starts = torch.randn(4, 32) * 10
    spaces = [LayerSpace(m, torch.randn(32) * 10, (1.0, 40.0), saes[m]) for m in (0, 1, 2)]
    rows = [spaces[0], spaces[1], spaces[1], spaces[2]]
    config = OptimConfig(steps=4, dummy_prompt="<pad> <pad> x", space=space, lr=0.3)
    common = dict(target=Target(3, 5), config=config, corpus_max=2.0)
    together = optimise_rows(lm, spaces=rows, inits=starts, **common)
    assert together.trajectories.shape == (4, 4) and not torch.equal(together.vectors, starts)
    for i in range(4):
        alone = optimise_rows(lm, spaces=[rows[i]], inits=starts[i : i + 1], **common)
        torch.testing.assert_close(together.vectors[i], alone.vectors[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(together.final[i], alone.final[0], rtol=1e-4, atol=1e-4)
    assert together.vectors.norm(dim=-1).max() <= 40.0 + 1e-3


def test_map_with_restarts_puts_agreement_on_feature_nodes(tiny_map_setup, tmp_path):
    config = map_config(tiny_map_setup, layers=[2], restarts=2, select="activation")
    graph, _ = run_map(config, tmp_path, log=lambda m: None)
    full = load_graph(tmp_path / "graph.json")
    rates = [d["agreement"] for _, d in full.nodes(data=True) if "agreement" in d]
    assert len(rates) == config.top_k and all(0 <= r <= 1 for r in rates)
    assert full.graph["restarts"] == 2


def test_cli_validate_restarts(run_cli, tiny_map_setup):
    s = tiny_map_setup
    result = run_cli(
        "validate",
        "restarts",
        "--target-layer",
        "3",
        "--neuron",
        "5",
        "--layers",
        "1,2",
        "--restarts",
        "2",
        "--steps",
        "3",
        "--model",
        str(s["model"]),
        "--dataset",
        str(s["corpus"]),
        "--sae-dir",
        str(s["saes"]),
    )
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"] and all(row[1].endswith("%") for row in rows)


def test_control_features_match_activation_level_and_are_distinct():
    from circuitmap.method.ablation import control_features

    activity = torch.tensor([5.0, 0.0, 4.8, 0.1, 5.2, 1.0, 0.0, 0.09, 4.0])
    controls = control_features(activity, [0, 3], 2)
    assert controls == [[4, 2], [7, 5]]
    flat = [c for row in controls for c in row]
    assert len(set(flat)) == len(flat) and not set(flat) & {0, 3}
    assert all(activity[c] > 0 for c in flat)


def test_necessity_statistics():
    from circuitmap.method.ablation import necessity

    strong = necessity(
        torch.tensor([5.0, 6.0, 7.0]), torch.tensor([[1.0, 1.0, 1.0], [2.0, 3.0, 1.0]])
    )
    # Above the controls on all 3 prompts: only the identity of the 2^3 sign flips is as large.
    assert strong["p_value"] == pytest.approx(1 / 8) and strong["effect_size"] > 0
    assert strong["ci_low"] <= 6.0 <= strong["ci_high"]
    weak = necessity(torch.tensor([1.0, 1.0]), torch.tensor([[3.0, 3.0], [4.0, 4.0]]))
    assert weak["p_value"] == 1.0 and weak["effect_size"] < 0
    # With 8 prompts, 5 controls suffice for p < 0.05.
    torch.manual_seed(0)
    controls = torch.randn(5, 8) * 0.1
    assert necessity(torch.ones(8), controls)["p_value"] == pytest.approx(1 / 256)


def test_sign_flip_p_value_is_uniform_under_the_null():
    from circuitmap.method.ablation import sign_flip_p

    torch.manual_seed(0)
    values = torch.tensor([sign_flip_p(torch.randn(10)) for _ in range(400)])
    assert 0.4 < (values <= 0.5).float().mean() < 0.6
    assert 0.02 < (values <= 0.05).float().mean() < 0.09


def test_nodes_carry_control_statistics(full_run):
    config, run_dir, _, _ = full_run
    graph = load_graph(run_dir / "graph.json")
    nodes = [d for _, d in graph.nodes(data=True) if d["kind"] != "neuron"]
    floor = 2.0**-config.effect_prompts  # exact sign-flip test over the effect prompts
    assert nodes and all(floor <= d["p_value"] <= 1 for d in nodes)
    assert all(d["ci_low"] <= d["effect"] + 1e-6 <= d["ci_high"] + 2e-6 for d in nodes)


def test_read_labels_formats_and_errors(tmp_path):
    from circuitmap.validate.labels import read_labels

    neuronpedia = tmp_path / "np.json"
    neuronpedia.write_text(
        json.dumps(
            [
                {
                    "modelId": "gemma-2-2b",
                    "layer": "7-gemmascope-res-16k",
                    "index": "302",
                    "description": "numbers",
                },
                {"layer": "7-gemmascope-res-16k", "index": "9", "description": ""},
            ]
        )
    )
    # Gemma Scope layer 7 (resid_post) reads resid_pre of layer 8.
    assert read_labels(neuronpedia) == {(8, 302): "numbers"}
    assert read_labels(neuronpedia, hook="resid_pre") == {(7, 302): "numbers"}
    table = tmp_path / "labels.csv"
    table.write_text("layer,feature,label\n2,5,circles\n")
    assert read_labels(table, hook="resid_pre") == {(2, 5): "circles"}
    with pytest.raises(CircuitmapError, match="does not exist"):
        read_labels(tmp_path / "missing.json")
    (tmp_path / "empty.csv").write_text("layer,feature,label\n")
    with pytest.raises(CircuitmapError, match="holds no"):
        read_labels(tmp_path / "empty.csv")


def test_similarity_of_descriptions():
    from circuitmap.validate.labels import similarity

    assert similarity("a circle is a round shape", "round circle shape") == pytest.approx(1.0)
    assert similarity("software licence terms", "a circle is round") == 0.0
    assert 0 < similarity("the circle of numbers", "real numbers") < 1


def test_labels_command_flags_and_writes_the_corrections_table(run_cli, full_run, tmp_path):
    import shutil

    _, run_dir, _, _ = full_run
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    graph = load_graph(run / "graph.json")
    node = next(d for _, d in graph.nodes(data=True) if d["kind"] == "feature")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"layer,feature,label\n{node['layer']},{node['index']},zebra migration patterns\n"
    )
    result = run_cli("labels", str(run), "--labels", str(labels))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((run / "labels.csv").open()))
    features = [n for n, d in graph.nodes(data=True) if d["kind"] == "feature"]
    assert len(rows) == len(features)
    labelled = next(r for r in rows if r["imported_label"] == "zebra migration patterns")
    assert labelled["flagged"] == "True" and float(labelled["similarity"]) == 0.0
    relabelled = load_graph(run / "graph.json")
    assert all("causal_description" in relabelled.nodes[n] for n in features)
    assert "causal (Patchscope of the feature)" in (run / "circuit.html").read_text()
    missing = run_cli("labels", str(run), "--labels", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_cli_validate_necessity_reads_the_run(run_cli, full_run, tmp_path):
    _, run_dir, _, _ = full_run
    result = run_cli("validate", "necessity", str(run_dir))
    assert result.exit_code == 0, result.output
    assert result.output.count("L") >= 15 and "95% interval" in result.output
    missing = run_cli("validate", "necessity", str(tmp_path))
    assert missing.exit_code == 2 and "not a circuitmap run folder" in missing.output


def test_cli_view_opens_the_run_html(run_cli, full_run, monkeypatch):
    _, run_dir, _, _ = full_run
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    result = run_cli("view", str(run_dir))
    assert result.exit_code == 0 and opened == [(run_dir / "circuit.html").resolve().as_uri()]
    assert f"opened {(run_dir / 'circuit.html').resolve()}" in result.output
    monkeypatch.setattr("webbrowser.open", lambda url: False)  # no browser on this machine
    headless = run_cli("view", str(run_dir))
    assert headless.exit_code == 0 and "--serve" in headless.output
    assert str((run_dir / "circuit.html").resolve()) in headless.output


def test_strongest_chain_prefers_depth_then_the_weakest_link():
    from circuitmap.graph.prune import strongest_chain

    graph = nx.DiGraph()
    for u, v, w in [
        ("L0.F1", "T", 0.9),
        ("L0.F1", "L1.F2", 0.2),
        ("L1.F2", "T", 0.3),
        ("L0.F3", "L1.F2", 0.5),
        ("L1.F4", "T", -0.8),
        ("L0.E", "L1.E", 0.9),  # error nodes: strong, deep, and never part of a feature chain
        ("L1.E", "L2.E", 0.9),
        ("L2.E", "T", 0.9),
    ]:
        graph.add_edge(u, v, weight=w)
    for node in ("L0.E", "L1.E", "L2.E"):
        graph.nodes[node]["kind"] = "error"
    assert strongest_chain(graph, "T") == ["L0.F3", "L1.F2", "T"]
    only_errors = nx.DiGraph()
    only_errors.add_edge("L0.E", "T", weight=0.9)
    only_errors.nodes["L0.E"]["kind"] = "error"
    assert strongest_chain(only_errors, "T") == ["T"]


def test_run_files_have_the_usual_permissions(full_run):
    _, run_dir, _, _ = full_run
    for name in ("config.json", "graph.json", "circuit.html"):
        assert (run_dir / name).stat().st_mode & 0o044 == 0o044, name


def test_map_builds_and_tests_on_a_prompt_set(tiny_map_setup, tmp_path):
    """--prompts FILE: build, effect and held-out prompts come from the file's three parts, the
    silent reference from the corpus, and the graph says which prompts the circuit explains."""
    from circuitmap.circuit.prompts import PromptSplit
    from circuitmap.files.storage import read_json

    lines = [f"let x be a real number and the circle {i} is a set of points" for i in range(8)]
    prompt_file = tmp_path / "math.txt"
    prompt_file.write_text("\n".join(lines))
    config = map_config(tiny_map_setup, layers=[2], prompts=str(prompt_file))
    run_map(config, tmp_path / "run", log=lambda m: None)
    split = PromptSplit.from_dict(read_json(tmp_path / "run/targets/L3.N5/prompts.json"))
    assert split.source == "math"
    assert {lines.index(t) % 3 for t in split.build.texts} == {0}
    assert {lines.index(t) % 3 for t in split.effect.texts} == {1}
    assert {lines.index(t) % 3 for t in split.heldout.texts} == {2}
    assert not set(split.silent.texts) & set(lines)
    assert load_graph(tmp_path / "run" / "graph.json").graph["prompts"] == str(prompt_file)

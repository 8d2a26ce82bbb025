"""End-to-end on the embedded Gemma 3 270M (converted once into the user cache, then reused)."""

import pytest
from reference import reference_patchscope

from circuitmap.config import ModelConfig, PatchscopeConfig, Target
from circuitmap.graph.export import load_graph
from circuitmap.method.explain import ExplainResult
from circuitmap.method.patchscope import patchscope
from circuitmap.model.load import load_model

pytestmark = pytest.mark.real_model

# The embedded model's "math" neuron: fires on sympy/networkx docstrings, not on licences.
TARGET_LAYER, NEURON = 12, 1742


@pytest.fixture(scope="module")
def real_lm():
    return load_model(ModelConfig())


@pytest.fixture(scope="module")
def explain_run(run_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = run_cli(
        "explain",
        "--target-layer",
        str(TARGET_LAYER),
        "--neuron",
        str(NEURON),
        "--layer",
        "4",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    return result.output, run_dir


def test_explain_lifts_the_neuron_above_its_corpus_maximum(explain_run):
    output, run_dir = explain_run
    run = ExplainResult.load(run_dir)
    assert run.final_activation > run.corpus_max > run.mean_activation
    assert run.final_activation <= run.config.optim.level * run.corpus_max + 1e-3  # bounded
    assert len(run.texts) == 100 and len(run.trajectory) == run.config.optim.steps
    assert run.contrastive_text.strip() and run.plain_text.strip()
    assert f"run saved to {run_dir}" in output


def test_real_model_shape_and_hook_points(real_lm):
    assert (real_lm.n_layers, real_lm.d_model, real_lm.d_mlp) == (18, 640, 2048)


def test_batched_patchscope_equals_separate_runs_on_the_real_model(real_lm, explain_run):
    run = ExplainResult.load(explain_run[1])
    config = PatchscopeConfig(max_new_tokens=6)
    fast = patchscope(real_lm, layer=4, signal=run.vector, noise=run.mean_vector, config=config)
    slow = reference_patchscope(
        real_lm, layer=4, signal=run.vector, noise=run.mean_vector, config=config
    )
    assert (fast.contrastive_text, fast.plain_text) == slow


@pytest.fixture(scope="module")
def real_saes(run_cli, tmp_path_factory):
    """Small SAEs (20k tokens) for layers 4 and 8, trained by the CLI in one activation pass."""
    sae_dir = tmp_path_factory.mktemp("saes")
    result = run_cli(
        "sae", "train", "--layers", "4,8", "--n-tokens", "20000", "--sae-dir", str(sae_dir)
    )
    assert result.exit_code == 0, result.output
    assert "layer 4: explained variance" in result.output
    assert "layer 8: explained variance" in result.output
    return sae_dir


def test_small_sae_trained_in_the_suite_feeds_explain(run_cli, real_saes, tmp_path):
    explained = run_cli(
        "explain",
        "--target-layer",
        str(TARGET_LAYER),
        "--neuron",
        str(NEURON),
        "--layer",
        "4",
        "--steps",
        "10",
        "--max-new-tokens",
        "4",
        "--out",
        str(tmp_path / "runs"),
        "--sae-dir",
        str(real_saes),
    )
    assert explained.exit_code == 0, explained.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    features = ExplainResult.load(run_dir).features
    assert features is not None and len(features.top) == 5
    assert features.top[0].activation > 0


MAP_ARGS = ["--layers", "4,8", "--steps", "20", "--max-new-tokens", "8"]


def _map(run_cli, real_saes, out, *targets):
    result = run_cli("map", *targets, *MAP_ARGS, "--sae-dir", str(real_saes), "--run-dir", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def real_map(run_cli, real_saes, tmp_path_factory):
    return _map(
        run_cli,
        real_saes,
        tmp_path_factory.mktemp("map") / "run",
        f"--target={TARGET_LAYER}:{NEURON}",
    )


def test_map_on_two_layers_writes_every_output(run_cli, real_map):
    run_dir = real_map
    for name in (
        "graph.json",
        "circuit.html",
        "circuit.graphml",
        "circuit.gexf",
        "circuit.json",
        "circuit_nodes.csv",
        "circuit_edges.csv",
        "circuit_neuronpedia.json",
    ):
        assert (run_dir / name).is_file(), name
    graph = load_graph(run_dir / "graph.json")
    features = [n for n, d in graph.nodes(data=True) if d["kind"] == "feature"]
    by_layer = {
        layer: [n for n in features if graph.nodes[n]["layer"] == layer] for layer in (4, 8)
    }
    # Each layer's own features (at most 40) and the whole circuit's (at most its budget).
    assert all(0 < len(nodes) <= 40 + 60 for nodes in by_layer.values())
    assert {"L4.E", "L8.E"} <= set(graph.nodes)
    # Edges: every layer-4 node to every layer-8 node, and layer 8's nodes to the target.
    assert (
        graph.number_of_edges()
        == (len(by_layer[4]) + 1) * (len(by_layer[8]) + 1) + len(by_layer[8]) + 1
    )
    assert all(graph.nodes[f]["patchscope"] for f in features)
    assert all(0 < graph.nodes[f]["p_value"] <= 1 for f in features)
    # The faithfulness figures are measured and printed, and the random floor is below them.
    g = graph.graph
    assert g["heldout_prompts"] > 0 and g["completeness"] > g["random_completeness"]
    assert g["sufficiency"] > g["random_sufficiency"]
    labelled = run_cli("labels", str(run_dir))
    assert labelled.exit_code == 0, labelled.output
    assert len((run_dir / "labels.csv").read_text().strip().splitlines()) == 1 + len(features)


def test_two_targets_share_one_map(run_cli, real_saes, real_map, tmp_path):
    """Mapping a second target alongside changes nothing in the first target's circuit."""
    run_dir = _map(
        run_cli, real_saes, tmp_path / "run", f"--target={TARGET_LAYER}:{NEURON}", "--target=11:100"
    )
    target = f"L{TARGET_LAYER}.N{NEURON}"
    alone = load_graph(real_map / "targets" / target / "graph.json")
    shared = load_graph(run_dir / "targets" / target / "graph.json")
    assert dict(shared.nodes(data=True)) == dict(alone.nodes(data=True))
    assert {(u, v): d for u, v, d in shared.edges(data=True)} == {
        (u, v): d for u, v, d in alone.edges(data=True)
    }
    merged = load_graph(run_dir / "graph.json")
    assert merged.graph["targets"] == f"{target},L11.N100"
    assert {target, "L11.N100"} <= set(merged.nodes)
    assert "id='target-filter'" in (run_dir / "circuit.html").read_text()


def test_probe_separates_math_from_licences(run_cli, real_lm):
    from circuitmap.files.prompt_sets import read_prompt_set
    from circuitmap.validate.probe import neuron_maxima, separation

    math = neuron_maxima(real_lm, read_prompt_set("math_notation")[1], TARGET_LAYER)[:, NEURON]
    licences = neuron_maxima(real_lm, read_prompt_set("licences")[1], TARGET_LAYER)[:, NEURON]
    assert math.mean() > 10 * licences.mean()
    assert separation(math, licences).accuracy >= 0.9
    result = run_cli("probe", "--target-layer", str(TARGET_LAYER), "--neuron", str(NEURON))
    assert result.exit_code == 0 and "separates math_notation from licences" in result.output


def test_find_and_steer_and_restarts_run_on_the_real_model(run_cli, real_lm, real_saes):
    from circuitmap.files.prompt_sets import read_prompt_set
    from circuitmap.model.generate import greedy_decode, prompt_rows
    from circuitmap.validate.probe import find_neurons
    from circuitmap.validate.steer import steer_neuron

    best = find_neurons(
        real_lm,
        TARGET_LAYER,
        read_prompt_set("math_notation")[1],
        read_prompt_set("licences")[1],
        5,
    )
    assert len(best) == 5 and all(b.positive_mean > b.negative_mean for b in best)
    prompt = "My favourite holiday was"
    clean = greedy_decode(real_lm, prompt_rows(real_lm, prompt, 1), lambda lg: lg.argmax(-1), 8)[0]
    steered = steer_neuron(
        real_lm, Target(TARGET_LAYER, NEURON), prompt, [None, 0.0], max_new_tokens=8
    )
    assert steered[0] == clean
    restarts = run_cli(
        "validate",
        "restarts",
        "--target-layer",
        str(TARGET_LAYER),
        "--neuron",
        str(NEURON),
        "--layers",
        "8",
        "--restarts",
        "2",
        "--steps",
        "10",
        "--sae-dir",
        str(real_saes),
    )
    assert restarts.exit_code == 0, restarts.output
    assert "median top-1 agreement" in restarts.output

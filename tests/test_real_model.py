"""End-to-end on the embedded Gemma 3 270M (converted once into the user cache, then reused)."""

import pytest
from typer.testing import CliRunner

from circuitmap.config import ModelConfig, PatchscopeConfig
from circuitmap.explain import ExplainResult
from circuitmap.model import load_model
from circuitmap.patchscope import patchscope
from circuitmap.reference import reference_patchscope
from circuitmap_cli.main import app

pytestmark = pytest.mark.real_model

# The embedded model's "math" neuron: fires on sympy/networkx docstrings, not on licences.
TARGET_LAYER, NEURON = 12, 1742


@pytest.fixture(scope="module")
def real_lm():
    return load_model(ModelConfig())


@pytest.fixture(scope="module")
def explain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(
        app,
        [
            "explain",
            "--target-layer",
            str(TARGET_LAYER),
            "--neuron",
            str(NEURON),
            "--layer",
            "4",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    return result.output, run_dir


def test_explain_lifts_the_neuron_above_its_corpus_maximum(explain_run):
    output, run_dir = explain_run
    run = ExplainResult.load(run_dir)
    assert run.final_activation > run.corpus_max > run.mean_activation
    assert len(run.texts) == 100 and len(run.trajectory) == 50
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


def test_small_sae_trained_in_the_suite_feeds_explain(tmp_path):
    runner = CliRunner()
    sae_dir = ["--sae-dir", str(tmp_path / "saes")]
    trained = runner.invoke(app, ["sae", "train", "--layers", "4", "--n-tokens", "20000", *sae_dir])
    assert trained.exit_code == 0, trained.output
    assert "layer 4: explained variance" in trained.output
    explained = runner.invoke(
        app,
        [
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
            *sae_dir,
        ],
    )
    assert explained.exit_code == 0, explained.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    features = ExplainResult.load(run_dir).features
    assert features is not None and len(features.top) == 5
    assert features.top[0].activation > 0

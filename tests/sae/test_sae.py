"""SAEs on tiny models: training, the saved format, lookup conventions, and the CLI."""

from itertools import pairwise

import pytest
import torch
from sae_lens import SAE, JumpReLUSAE, JumpReLUSAEConfig

from circuitmap.config import SAESource
from circuitmap.errors import CircuitmapError
from circuitmap.model.hooks import record_resid_pre, run_body
from circuitmap.sae.activations import collect_activations
from circuitmap.sae.features import feature_report
from circuitmap.sae.store import list_own_saes, load_layer_sae, resid_pre_layer, save_own_sae
from circuitmap.sae.train import reconstruction_quality, train_layer_saes, train_sae
from circuitmap.sae.train_config import SAETrainConfig
from tiny import TINY_TRAIN, tiny_lm


@pytest.fixture(scope="module")
def tiny():
    return tiny_lm("gemma3")


@pytest.fixture(scope="module")
def acts(tiny, many_texts):
    return collect_activations(tiny, many_texts, [1, 2], n_tokens=3300, context=16)


def test_activations_drop_bos_and_padding(tiny, acts):
    assert acts[1].shape == (3300, 32) and acts[2].shape == (3300, 32)
    texts = ["a circle is x", "the set"]  # 4 + 2 real tokens, each after a BOS
    got = collect_activations(tiny, texts, [1], n_tokens=100, dtype=torch.float32)[1]
    assert got.shape == (6, 32)
    with record_resid_pre(tiny.model, [1], stop=True) as rec:
        run_body(tiny.model, tiny.tokenizer(texts[0], return_tensors="pt")["input_ids"])
    torch.testing.assert_close(got[:4], rec[1][0, 1:], rtol=1e-4, atol=1e-4)


def test_training_lowers_reconstruction_error(acts):
    train, held_out = acts[1][:3000], acts[1][3000:]
    untrained = train_sae(train[:64], SAETrainConfig(**{**TINY_TRAIN.__dict__, "n_tokens": 64}))
    trained = train_sae(train, TINY_TRAIN)
    before = reconstruction_quality(untrained, held_out)["explained_variance"]
    after = reconstruction_quality(trained, held_out)
    assert after["explained_variance"] > before
    assert after["explained_variance"] > 0.5
    assert after["l0"] <= TINY_TRAIN.k + 1e-6


def test_saved_sae_loads_with_sae_lens_and_encodes_the_same(acts, tmp_path):
    sae = train_sae(acts[1][:3000], TINY_TRAIN)
    save_own_sae(sae, tmp_path / "resid_pre_1", {"explained_variance": 1.0})
    loaded = SAE.load_from_disk(str(tmp_path / "resid_pre_1"))
    x = acts[1][3000:].float()
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=1e-4, atol=1e-4)
    assert loaded.decode(loaded.encode(x)).shape == x.shape
    assert sorted(p.name for p in (tmp_path / "resid_pre_1").iterdir()) == [
        "cfg.json",
        "quality.json",
        "sae_weights.safetensors",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["resid_pre_1"]  # no temp folders left


def test_train_layer_saes_trains_once_and_resumes(tiny, many_texts, tmp_path):
    logs = []
    first = train_layer_saes(tiny, many_texts, [1, 2], TINY_TRAIN, tmp_path, log=logs.append)
    assert set(first) == {1, 2} and len(logs) == 2
    for quality in first.values():
        assert {"explained_variance", "l0", "dead_fraction", "loss_increase"} <= set(quality)
    assert [layer for layer, _, _ in list_own_saes(tmp_path)] == [1, 2]
    # An interrupted run left layer 2 missing: only it is trained again.
    import shutil

    shutil.rmtree(tmp_path / "resid_pre_2")
    again = train_layer_saes(tiny, many_texts, [1, 2], TINY_TRAIN, tmp_path, log=logs.append)
    assert set(again) == {2}


def _gemma_scope_style(folder, d_in=32, hook_layer=0):
    """A JumpReLU SAE saved as sae-lens saves Gemma Scope: cfg.json + sae_weights.safetensors."""
    cfg = JumpReLUSAEConfig(d_in=d_in, d_sae=48)
    cfg.metadata.hook_name = f"blocks.{hook_layer}.hook_resid_post"
    cfg.metadata.neuronpedia_id = "tiny/0-gemmascope-res-16k"
    sae = JumpReLUSAE(cfg)
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_()
        sae.threshold.fill_(0.1)
    sae.save_model(str(folder))
    return sae


def test_gemma_scope_format_loads_through_the_templated_path(tmp_path):
    _gemma_scope_style(tmp_path / "layer_0" / "width_16k" / "canonical")
    source = SAESource(path=str(tmp_path / "layer_{layer}" / "width_16k" / "canonical"))
    # resid_pre of layer 1 is read by the layer-0 resid_post SAE (Gemma Scope convention).
    loaded = load_layer_sae(1, 32, tmp_path, "tiny", source)
    assert loaded.layer == 1 and loaded.sae.cfg.d_sae == 48
    assert resid_pre_layer(loaded.sae.cfg.metadata.hook_name) == 1
    assert loaded.neuronpedia_url(7) == "https://www.neuronpedia.org/tiny/0-gemmascope-res-16k/7"
    with pytest.raises(CircuitmapError, match="resid_pre of layer 0"):
        load_layer_sae(0, 32, tmp_path, "tiny", source)


def test_sae_of_the_wrong_width_is_a_clear_error(tmp_path):
    _gemma_scope_style(tmp_path / "s", d_in=16)
    with pytest.raises(
        CircuitmapError, match="size 16, but the model's residual stream has size 32"
    ):
        load_layer_sae(1, 32, tmp_path, "tiny", SAESource(path=str(tmp_path / "s")))


def test_missing_sae_names_the_command_that_makes_one(tmp_path):
    with pytest.raises(CircuitmapError, match=r"circuitmap sae train --layers 3"):
        load_layer_sae(3, 32, tmp_path, "tiny", SAESource())


def test_feature_report_ranks_features(tmp_path):
    sae = _gemma_scope_style(tmp_path / "s")
    loaded = load_layer_sae(1, 32, tmp_path, "tiny", SAESource(path=str(tmp_path / "s")))
    x, mean = torch.randn(32) * 3, torch.zeros(32)
    report = feature_report(loaded, x, mean, k=5)
    acts = sae.encode(x[None])[0]
    assert [f.index for f in report.top] == acts.topk(5).indices.tolist()
    assert all(a.activation >= b.activation for a, b in pairwise(report.top))
    assert all(a.increase >= b.increase for a, b in pairwise(report.added))


def test_cli_sae_train_info_and_explain_with_features(
    run_cli, tiny_model_dir, many_texts, tmp_path
):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(many_texts))
    common = [
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(corpus),
        "--sae-dir",
        str(tmp_path / "saes"),
    ]
    result = run_cli(
        "sae", "train", "--layers", "1", *common, "--width", "64", "--k", "4", "--n-tokens", "2000"
    )
    assert result.exit_code == 0, result.output
    assert "layer 1: explained variance" in result.output
    info = run_cli(
        "sae", "info", "--model", str(tiny_model_dir), "--sae-dir", str(tmp_path / "saes")
    )
    assert info.exit_code == 0 and "explained var" in info.output
    explained = run_cli(
        "explain",
        "--target-layer",
        "3",
        "--neuron",
        "5",
        "--layer",
        "1",
        *common,
        "--steps",
        "3",
        "--max-new-tokens",
        "2",
        "--out",
        str(tmp_path / "runs"),
    )
    assert explained.exit_code == 0, explained.output
    assert "top on X" in explained.output and "added by the optimisation" in explained.output
    missing = run_cli(
        "explain", "--target-layer", "3", "--neuron", "5", "--layer", "2", *common, "--steps", "1"
    )
    assert missing.exit_code == 2 and "circuitmap sae train --layers 2" in missing.output


def test_release_without_network_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = SAESource(
        release="gemma-scope-2b-pt-res-canonical", sae_id="layer_{layer}/width_16k/canonical"
    )
    # resid_pre of layer 8 is read by the release's layer-7 SAE.
    with pytest.raises(
        CircuitmapError,
        match="cannot load SAE gemma-scope-2b-pt-res-canonical/layer_7/width_16k/canonical",
    ):
        load_layer_sae(8, 2304, tmp_path, "gemma-2-2b", source)
    with pytest.raises(CircuitmapError, match="--sae-release needs --sae-id"):
        load_layer_sae(
            8, 2304, tmp_path, "gemma-2-2b", SAESource(release="gemma-scope-2b-pt-res-canonical")
        )


def test_diverged_training_saves_nothing(tiny, many_texts, tmp_path, monkeypatch):
    import circuitmap.sae.train as sae_train

    def diverging(acts, config):
        sae = train_sae(acts[:64], config)
        with torch.no_grad():
            sae.W_dec.fill_(float("nan"))
        return sae

    monkeypatch.setattr(sae_train, "train_sae", diverging)
    with pytest.raises(CircuitmapError, match="SAE training for layer 1 diverged"):
        train_layer_saes(tiny, many_texts, [1], TINY_TRAIN, tmp_path, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []


def test_cached_saes_of_another_recipe_are_named(acts, tmp_path):
    """A map over cached own SAEs trained with another k (e.g. by an older version) is told
    which layers and how they differ; SAEs of the map's recipe, and missing ones, are not."""
    from circuitmap.config import MapConfig, ModelConfig, Target
    from circuitmap.model.load import cache_root, model_id_for
    from circuitmap.sae.store import own_sae_dir, own_sae_root
    from circuitmap.sae.train import missing_own_saes, other_recipe_saes

    config = MapConfig(
        targets=[Target(3, 5)], layers=[0, 1, 2], model=ModelConfig(cache_dir=str(tmp_path))
    )
    root = own_sae_root(cache_root(str(tmp_path)), model_id_for(config.model.name), config.sae)
    sae = train_sae(acts[1][:3000], TINY_TRAIN)
    recipe = SAETrainConfig()
    for layer, k in ((0, recipe.k), (1, 2 * recipe.k)):
        trained = {"config": {"architecture": "topk", "width": recipe.width, "k": k}}
        save_own_sae(sae, own_sae_dir(root, layer), trained)
    assert other_recipe_saes(config, recipe) == {1: f"k {2 * recipe.k}"}
    assert missing_own_saes(config) == [2]

"""probe, find and steer on tiny models, with a neuron and an SAE feature planted to fire on
the word "circle"."""

import re

import pytest
import torch
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

from circuitmap.config import Target
from circuitmap.errors import CircuitmapError
from circuitmap.files.prompt_sets import EXAMPLE_SETS, read_prompt_set
from circuitmap.model.generate import greedy_decode, prompt_rows
from circuitmap.model.hooks import record_mlp_post, record_resid_pre, run_body
from circuitmap.sae.store import LayerSAE
from circuitmap.validate.probe import feature_maxima, find_neurons, separation
from circuitmap.validate.steer import steer_feature, steer_neuron
from tiny import tiny_lm

CIRCLE = ["a circle is the set of all points", "the circle has a point", "let x be a circle"]
OTHER = ["the graph has a node", "a number is real", "permission is granted to any person"]
LAYER, NEURON = 1, 11


@pytest.fixture(scope="module")
def planted():
    """A tiny model whose layer-1 neuron 11 fires on "circle" tokens."""
    lm = tiny_lm("gemma3")
    mlp = lm.model.model.layers[LAYER].mlp
    inputs = []
    handle = mlp.gate_proj.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    for text in CIRCLE + OTHER:
        run_body(lm.model, lm.tokenizer(text, return_tensors="pt")["input_ids"])
    handle.remove()
    circle_id = lm.tokenizer.convert_tokens_to_ids("circle")
    ids = torch.cat([lm.tokenizer(t, return_tensors="pt")["input_ids"][0] for t in CIRCLE + OTHER])
    h = torch.cat([x[0] for x in inputs])  # (tokens, d_model)
    direction = h[ids == circle_id].mean(0) - h[ids != circle_id].mean(0)
    with torch.no_grad():
        mlp.gate_proj.weight[NEURON] = direction / direction.norm() * 3
        mlp.up_proj.weight[NEURON] = direction / direction.norm() * 3
    return lm


def test_find_ranks_the_planted_neuron_first(planted):
    best = find_neurons(planted, LAYER, CIRCLE, OTHER, top=3)
    assert best[0].neuron == NEURON and best[0].positive_mean > best[0].negative_mean


def test_probe_separates_sets_with_a_planted_sae_feature(planted):
    ids = planted.tokenizer(CIRCLE[1], return_tensors="pt")["input_ids"]
    with record_resid_pre(planted.model, [LAYER], stop=True) as rec:
        run_body(planted.model, ids)
    circle_id = planted.tokenizer.convert_tokens_to_ids("circle")
    r = rec[LAYER][0, (ids[0] == circle_id).nonzero()[0, 0]]
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=32, d_sae=8))
    with torch.no_grad():
        sae.W_enc.zero_()
        sae.b_dec.zero_()
        sae.b_enc.zero_()
        sae.W_enc[:, 3] = r / r.norm()
        sae.threshold.fill_(0.9 * r.norm().item())
    layer_sae = LayerSAE(sae, LAYER, "planted", None, None)
    pos = feature_maxima(planted, CIRCLE[1:2], layer_sae, [3])[:, 0]
    neg = feature_maxima(planted, OTHER, layer_sae, [3])[:, 0]
    assert pos.min() > 0 and (neg == 0).all()
    assert separation(pos, neg).accuracy == 1.0


def test_separation_threshold_splits_the_samples():
    sep = separation(torch.tensor([3.0, 4.0, 5.0]), torch.tensor([0.0, 1.0, 3.5]))
    assert sep.accuracy == pytest.approx(5 / 6) and 1.0 <= sep.threshold < 4.0


def test_steering_at_strength_zero_is_the_clean_text(planted):
    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=32, d_sae=8))
    with torch.no_grad():
        sae.W_dec.normal_()
    layer_sae = LayerSAE(sae, LAYER, "random", None, None)
    clean = greedy_decode(
        planted, prompt_rows(planted, "a circle is", 1), lambda lg: lg.argmax(-1), 6
    )
    steered = steer_feature(planted, layer_sae, 2, "a circle is", [0.0, 200.0], max_new_tokens=6)
    assert steered[0] == clean[0]
    assert steered[1] != clean[0]


def test_clamping_sets_the_neuron_and_none_is_clean(planted):
    from circuitmap.validate.steer import clamp_neuron

    ids = planted.tokenizer("a circle is", return_tensors="pt")["input_ids"].repeat(2, 1)
    with clamp_neuron(planted, Target(LAYER, NEURON), torch.tensor([float("nan"), 7.0])):
        with record_mlp_post(planted.model, LAYER, stop=True) as rec:
            run_body(planted.model, ids)
    with record_mlp_post(planted.model, LAYER, stop=True) as clean:
        run_body(planted.model, ids[:1])
    torch.testing.assert_close(rec[LAYER][0], clean[LAYER][0])
    assert (rec[LAYER][1, :, NEURON] == 7.0).all()
    texts = steer_neuron(
        planted, Target(LAYER, NEURON), "a circle is", [None, 50.0], max_new_tokens=4
    )
    assert len(texts) == 2


def test_prompt_sets_ship_and_bad_ones_are_clear_errors(tmp_path):
    for name in EXAMPLE_SETS:
        assert len(read_prompt_set(name)[1]) >= 10
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(CircuitmapError, match="is empty"):
        read_prompt_set(str(empty))
    with pytest.raises(CircuitmapError, match="neither a readable file nor one of"):
        read_prompt_set(str(tmp_path / "missing.txt"))


def test_cli_probe_find_steer_on_a_tiny_model(run_cli, tiny_model_dir, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(CIRCLE))
    b.write_text("\n".join(OTHER))
    model = ["--model", str(tiny_model_dir)]
    probe = run_cli(
        "probe", "--target-layer", "1", "--neuron", "3", "--set", str(a), "--set", str(b), *model
    )
    assert probe.exit_code == 0, probe.output
    assert "threshold" in probe.output and "accuracy" in probe.output
    found = run_cli(
        "find", "--layer", "1", "--positive", str(a), "--negative", str(b), "--top", "3", *model
    )
    rows = [line for line in found.output.splitlines() if re.match(r"^\s+\d+\s+-?\d", line)]
    assert found.exit_code == 0 and len(rows) == 3
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(CIRCLE + OTHER))
    steer = run_cli(
        "steer",
        "--target-layer",
        "2",
        "--neuron",
        "4",
        "--clamp",
        "0,3",
        "--prompt",
        "a circle is",
        "--max-new-tokens",
        "3",
        "--dataset",
        str(corpus),
        *model,
    )
    assert steer.exit_code == 0, steer.output
    assert "clean" in steer.output and "3 x corpus max" in steer.output
    bad = run_cli(
        "probe",
        "--target-layer",
        "1",
        "--neuron",
        "3",
        "--feature",
        "1:999",
        "--set",
        str(a),
        "--sae-dir",
        str(tmp_path / "none"),
        *model,
    )
    assert bad.exit_code == 2 and "circuitmap sae train --layers 1" in bad.output
    neither = run_cli("steer", *model)
    assert neither.exit_code == 2 and "steer needs either" in neither.output

"""Baseline, optimisation and Patchscope on tiny random models of each family."""

import pytest
import torch
from reference import inject_resid_pre, reference_optimise, reference_patchscope

from circuitmap.config import OptimConfig, PatchscopeConfig, Target
from circuitmap.method.baseline import compute_baseline
from circuitmap.method.optimise import optimise_vector, target_activation
from circuitmap.method.patchscope import contrastive_logits, patchscope
from circuitmap.model.generate import control_tokens
from circuitmap.model.hooks import record_resid_pre, run_body

TARGET_LAYER, NEURON, LAYER = 3, 5, 1


def test_baseline_mean_is_the_mean_of_last_token_resid(lm, texts):
    base = compute_baseline(lm, texts, [LAYER, 2], max_tokens=6, batch_size=2)
    one_by_one = []
    lm.tokenizer.truncation_side = "left"
    for text in texts:  # unpadded, one text at a time: BOS + the last 5 tokens
        ids = lm.tokenizer(text, return_tensors="pt", truncation=True, max_length=6)["input_ids"]
        with record_resid_pre(lm.model, [LAYER], stop=True) as rec:
            run_body(lm.model, ids)
        one_by_one.append(rec[LAYER][0, -1])
    vectors = torch.stack(one_by_one)
    # Left padding with real-token position ids gives what each text gives alone.
    torch.testing.assert_close(base.means[LAYER], vectors.mean(0), rtol=1e-4, atol=1e-4)
    norms = vectors.norm(dim=-1)
    assert base.norm_ranges[LAYER] == pytest.approx(
        (norms.min().item(), norms.max().item()), rel=1e-4
    )
    assert set(base.means) == {LAYER, 2} and base.n_texts == len(texts)


def test_baseline_records_the_target_maximum(lm, texts):
    base = compute_baseline(lm, texts, [LAYER], target=Target(TARGET_LAYER, NEURON))
    assert base.target_max is not None and torch.isfinite(torch.tensor(base.target_max))


def _mean(lm, texts):
    return compute_baseline(lm, texts, [LAYER]).means[LAYER]


@pytest.mark.parametrize("units", ["raw", "rms"])
def test_optimisation_raises_the_target(lm, texts, units):
    result = optimise_vector(
        lm,
        layer=LAYER,
        target=Target(TARGET_LAYER, NEURON),
        mean=_mean(lm, texts),
        config=OptimConfig.report(steps=15, lr=0.05, lr_units=units),
    )
    assert result.final_activation > result.trajectory[0]
    assert len(result.trajectory) == 15


def test_norm_constraint_keeps_x_in_range(lm, texts):
    mean = _mean(lm, texts)
    lo, hi = mean.norm().item() * 0.9, mean.norm().item() * 1.1
    result = optimise_vector(
        lm,
        layer=LAYER,
        target=Target(TARGET_LAYER, NEURON),
        mean=mean,
        config=OptimConfig.report(steps=10, lr=5.0, lr_units="rms", norm_constraint=True),
        norm_range=(lo, hi),
    )
    assert lo - 1e-3 <= result.vector.norm().item() <= hi + 1e-3


def test_fast_optimisation_equals_the_full_model_reference(lm, texts):
    mean = _mean(lm, texts)
    config = OptimConfig.report(steps=5, lr=0.2)
    fast = optimise_vector(
        lm, layer=LAYER, target=Target(TARGET_LAYER, NEURON), mean=mean, config=config
    )
    ref_x, ref_traj = reference_optimise(
        lm, layer=LAYER, target=Target(TARGET_LAYER, NEURON), mean=mean, config=config
    )
    # The fast path runs the dummy prompt's earlier tokens once (cached): float rounding only.
    torch.testing.assert_close(fast.vector, ref_x, rtol=1e-3, atol=1e-3)
    assert fast.trajectory == pytest.approx(ref_traj, rel=1e-4, abs=1e-4)


def test_random_init_is_seeded(lm, texts):
    mean = _mean(lm, texts)

    def run(seed):
        config = OptimConfig.report(steps=2, init="random", seed=seed)
        return optimise_vector(
            lm, layer=LAYER, target=Target(TARGET_LAYER, NEURON), mean=mean, config=config
        ).vector

    torch.testing.assert_close(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


def test_contrastive_logits_follow_the_formula():
    signal, noise = torch.randn(7), torch.randn(7)
    torch.testing.assert_close(contrastive_logits(signal, noise, 1.5), 2.5 * signal - 1.5 * noise)
    torch.testing.assert_close(contrastive_logits(signal, noise, 0.0), signal)


def test_batched_patchscope_equals_separate_runs(lm, texts):
    mean = _mean(lm, texts)
    x = optimise_vector(
        lm,
        layer=LAYER,
        target=Target(TARGET_LAYER, NEURON),
        mean=mean,
        config=OptimConfig.report(steps=5, lr=1.0),
    ).vector
    config = PatchscopeConfig(max_new_tokens=8)
    fast = patchscope(lm, layer=LAYER, signal=x, noise=mean, config=config)
    contrastive, plain = reference_patchscope(lm, layer=LAYER, signal=x, noise=mean, config=config)
    assert (fast.contrastive_text, fast.plain_text) == (contrastive, plain)
    assert fast.inject_position == lm.tokenizer(config.prompt)["input_ids"].index(
        lm.tokenizer.convert_tokens_to_ids("x")
    )


def test_patchscope_first_token_is_argmax_of_contrast(lm, texts):
    mean = _mean(lm, texts)
    x = mean + torch.randn_like(mean) * mean.norm()
    config = PatchscopeConfig(max_new_tokens=1, alpha=3.0)
    ids = torch.tensor([lm.tokenizer(config.prompt)["input_ids"]])
    logits = {}
    for name, vec in (("signal", x), ("noise", mean)):
        with inject_resid_pre(lm.model, LAYER, 5, vec):
            logits[name] = lm.model(input_ids=ids).logits[0, -1]
    blocked = control_tokens(lm.tokenizer, logits["signal"].shape[-1])
    signal, noise = (logits[k].masked_fill(blocked, float("-inf")) for k in ("signal", "noise"))
    expected = contrastive_logits(signal, noise, 3.0, config.plausibility).argmax().item()
    got = patchscope(lm, layer=LAYER, signal=x, noise=mean, config=config)
    assert got.contrastive_text == lm.tokenizer.decode([expected], skip_special_tokens=True)


def test_target_activation_is_differentiable(lm, texts):
    ids = lm.tokenizer("<pad> <pad> <pad> x", return_tensors="pt")["input_ids"]
    vec = _mean(lm, texts)[None].clone().requires_grad_(True)
    act = target_activation(
        lm, ids, layers=[LAYER], vectors=vec, target=Target(TARGET_LAYER, NEURON)
    )
    act.sum().backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0

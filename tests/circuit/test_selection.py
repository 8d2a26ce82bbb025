"""The parts of a faithful circuit: removing SAE components, ranking and keeping features by
attribution, and how stable that choice is."""

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from circuitmap.circuit.attribution import bootstrap_agreement, keep_count, select
from circuitmap.circuit.decompose import decompose
from circuitmap.config import MapConfig, Target
from circuitmap.errors import CircuitmapError


def _sae(d_model: int = 8, d_sae: int = 12) -> StandardSAE:
    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d_model, d_sae=d_sae))
    with torch.no_grad():
        for param in sae.parameters():
            param.normal_()
    return sae


def test_removing_everything_gives_the_reference_and_nothing_changes_nothing():
    sae = _sae()
    reference = torch.randn(50, 8) * 3
    dec = decompose(1, sae, reference, "silent")
    x = torch.randn(2, 5, 8) * 3  # (rows, seq, d_model)
    real = torch.ones(2, 5)
    real[:, 0] = 0  # BOS untouched
    every = torch.ones(2, 12)
    gone = dec.remove(x, real, every, torch.ones(2))
    # Every feature and the error term at their reference: the mean reference resid_pre.
    torch.testing.assert_close(gone[:, 1:], reference.mean(0).expand(2, 4, 8), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gone[:, 0], x[:, 0])
    torch.testing.assert_close(dec.remove(x, real, torch.zeros(2, 12), torch.zeros(2)), x)


def test_removals_applied_to_all_prompts_equal_row_by_row_removal():
    dec = decompose(2, _sae(), torch.randn(30, 8), "silent")
    x, real = torch.randn(3, 4, 8), torch.ones(3, 4)
    removed = (torch.rand(5, 12) > 0.5).float()
    error = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    each = dec.remove_each(x, real, removed, error).view(5, 3, 4, 8)
    for c in range(5):
        one = dec.remove(x, real, removed[c].expand(3, -1), error[c].expand(3))
        torch.testing.assert_close(each[c], one, atol=1e-4, rtol=1e-4)


def test_zero_ablation_reference_is_zero():
    dec = decompose(0, _sae(), None, "zero")
    assert dec.feature_ref.abs().sum() == 0 and dec.error_ref.abs().sum() == 0


def test_keep_count_reaches_the_share_within_the_cap():
    scores = torch.tensor([5.0, -3.0, 3.0, 1.0, 1.0, 0.0])  # positive total 10
    assert keep_count(scores, 0.5, 10) == 1  # 5 of 10
    assert keep_count(scores, 0.8, 10) == 2  # 8 of 10
    assert keep_count(scores, 0.81, 10) == 3
    assert keep_count(scores, 1.0, 10) == 4  # never a feature with no positive attribution
    assert keep_count(scores, 1.0, 2) == 2  # the cap wins
    assert keep_count(-scores.abs(), 0.9, 10) == 0
    assert select(scores, 0.8, 10) == [0, 2]


def test_bootstrap_agreement_is_one_for_a_feature_every_prompt_agrees_on():
    torch.manual_seed(0)
    per_prompt = torch.rand(10, 20) * 0.1
    per_prompt[:, 3] = 5.0  # always the strongest
    per_prompt[0, 7] = 40.0  # strong on one prompt only
    kept = select(per_prompt.mean(0), 0.9, 5)
    assert kept[:2] == [3, 7]
    agreement = dict(zip(kept, bootstrap_agreement(per_prompt, kept, 0.9, 5, 200), strict=True))
    assert agreement[3] == 1.0
    assert agreement[7] < 0.9  # resamples without that prompt drop it


@pytest.mark.parametrize(
    "change, message",
    [
        ({"select": "best"}, "select 'best' is not supported: use attribution | activation"),
        ({"ablation": "half"}, "ablation 'half' is not supported: use silent | zero | mean"),
        ({"share": 0.0}, "share 0.0 is outside"),
        ({"max_features": 0}, "max_features 0 must be at least 1"),
    ],
)
def test_map_config_checks_choices_and_ranges_when_built(change, message):
    with pytest.raises(CircuitmapError, match=message.replace("|", r"\|")):
        MapConfig(targets=[Target(3, 5)], **change)


def test_integrated_gradients_add_up_to_the_effect_of_removing_every_feature(many_texts):
    """Along the straight path, the features' attributions sum to what removing all of them
    (error term kept) takes from the target, prompt by prompt (the completeness axiom)."""
    from circuitmap.circuit.attribution import attribution, path_gradient
    from circuitmap.circuit.decompose import removal_forward
    from circuitmap.circuit.prompt_run import prompt_run
    from circuitmap.circuit.prompts import top_prompts
    from tiny import tiny_lm

    lm = tiny_lm("gemma3")
    split = top_prompts(lm, many_texts, [Target(3, 5)], n=7, n_heldout=1, n_silent=8)["L3.N5"]
    run = prompt_run(lm, split.build, [1], Target(3, 5))
    sae = _sae(d_model=32, d_sae=48)
    reference = torch.randn(40, 32) * 5
    dec = decompose(1, sae, reference, "silent")
    grad = path_gradient(lm, dec, run, Target(3, 5), steps=512)  # the tiny model is very curved
    features, _ = attribution(dec, run, grad)  # (n, d_sae)
    removed, _ = removal_forward(
        lm,
        dec,
        run,
        torch.stack([torch.zeros(48), torch.ones(48)]),
        torch.zeros(2),
        Target(3, 5),
        [],
    )  # (2, n): clean, every feature removed
    effect = removed[0] - removed[1]
    torch.testing.assert_close(features.sum(1), effect, rtol=0.02, atol=0.02 * effect.abs().max())


@pytest.fixture(scope="module")
def tiny_attribution(many_texts):
    """A tiny model's build prompts recorded at layer 1, and a dense random SAE there."""
    from circuitmap.circuit.prompt_run import prompt_run
    from circuitmap.circuit.prompts import top_prompts
    from tiny import tiny_lm

    lm = tiny_lm("gemma3")
    split = top_prompts(lm, many_texts, [Target(3, 5)], n=7, n_heldout=1, n_silent=8)["L3.N5"]
    run = prompt_run(lm, split.build, [1], Target(3, 5))
    dec = decompose(1, _sae(d_model=32, d_sae=48), torch.randn(40, 32) * 5, "silent")
    return lm, run, dec


def test_a_path_from_a_circuit_of_every_feature_stays_at_the_clean_gradient(tiny_attribution):
    """Every feature kept: the path starts at the clean stream, so its gradient is the clean
    one; none kept: it is not."""
    from circuitmap.circuit.attribution import path_gradient

    lm, run, dec = tiny_attribution
    every = path_gradient(lm, dec, run, Target(3, 5), steps=1, kept=list(range(48)))
    torch.testing.assert_close(every, run.grads[1], rtol=1e-4, atol=1e-5)
    none = path_gradient(lm, dec, run, Target(3, 5), steps=1)
    assert not torch.allclose(none, run.grads[1], rtol=1e-2, atol=1e-3)


def test_one_round_is_plain_attribution_and_rounds_share_the_cap(tiny_attribution):
    from circuitmap.circuit.attribution import attribution, choose, path_gradient

    lm, run, dec = tiny_attribution
    common = {"ig_steps": 1, "share": 1.0, "cap": 8, "resamples": 10}
    one = choose(lm, dec, run, Target(3, 5), rounds=1, **common)
    scores = attribution(dec, run, path_gradient(lm, dec, run, Target(3, 5), 1))[0].mean(0)
    assert one.ranked == scores.argsort(descending=True)[:8].tolist()
    assert one.kept == keep_count(scores, 1.0, 8)
    two = choose(lm, dec, run, Target(3, 5), rounds=2, **common)
    kept = two.ranked[: two.kept]
    assert len(set(kept)) == len(kept) <= 8 and len(two.agreement) == two.kept
    assert kept[:4] == one.ranked[:4]  # the first round is the same ranking, cut at its quota
    assert all(score > 0 for score in two.scores[: two.kept])  # a round keeps positive ones only

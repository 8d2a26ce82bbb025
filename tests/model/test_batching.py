"""The fast paths of a map equal the plain ones: rows injecting at their own layers, batched
Patchscope decodes, forwards that start from a recorded resid_pre, prompts cut at the peak."""

import torch
from reference import inject_resid_pre

from circuitmap.circuit.prompts import top_prompts
from circuitmap.config import PatchscopeConfig, Target
from circuitmap.method.patchscope import patchscope, patchscope_rows
from circuitmap.model.hooks import (
    inject_rows,
    record_mlp_post,
    record_resid_pre,
    run_body,
    start_at,
)
from circuitmap.model.tokens import encode

LONG = " ".join(["a circle is the set of all points x in the plane"] * 3)  # > sliding window 16


def _mlp(lm, ids, attn=None, layer=3):
    with record_mlp_post(lm.model, layer, stop=True) as mlp:
        run_body(lm.model, ids, attn)
    return mlp[layer]


def test_rows_injecting_at_their_own_layers_equal_separate_injections(lm):
    ids = lm.tokenizer(["<pad> <pad> x"] * 3, return_tensors="pt")["input_ids"]
    vectors = torch.randn(3, lm.d_model) * 10
    layers = [0, 2, 1]
    with inject_rows(lm.model, layers, -1, vectors):
        together = _mlp(lm, ids)
    for row, layer in enumerate(layers):
        with inject_resid_pre(lm.model, layer, -1, vectors[row]):
            alone = _mlp(lm, ids[row : row + 1])
        torch.testing.assert_close(together[row], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_a_forward_started_at_a_layer_equals_the_full_forward(lm):
    """Skipped layers keep their indices, so each later layer keeps its attention mask (the
    tiny Gemma 2 alternates sliding-window and full layers), with left padding."""
    batch = encode(lm, [LONG, "the unit circle"], max_tokens=64)
    ids, attn = batch.input_ids, batch.attention_mask
    with record_resid_pre(lm.model, [2]) as resid:
        full = _mlp(lm, ids, attn)
    ran = []
    handles = [
        layer.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
        for i, layer in enumerate(lm.model.model.layers)
    ]
    with start_at(lm.model, 2, resid[2]):
        started = _mlp(lm, ids, attn)
    for h in handles:
        h.remove()
    assert ran == [2, 3]  # layers 0 and 1 were skipped ...
    assert len(lm.model.model.layers) == 4 and not any(  # ... and are back afterwards
        type(layer).__name__ == "_PassThrough" for layer in lm.model.model.layers
    )
    real = attn.bool()
    torch.testing.assert_close(started[real], full[real], rtol=1e-4, atol=1e-4)


def test_batched_patchscope_of_several_layers_equals_separate_decodes(lm):
    config = PatchscopeConfig(max_new_tokens=4)
    signals, noises = torch.randn(3, lm.d_model) * 10, torch.randn(3, lm.d_model) * 10
    layers = [0, 2, 1]
    together = patchscope_rows(lm, layers=layers, signals=signals, noises=noises, config=config)
    for j, layer in enumerate(layers):
        alone = patchscope(lm, layer=layer, signal=signals[j], noise=noises[j], config=config)
        assert together[j] == alone


def test_prompts_are_windows_that_end_at_the_targets_peak(lm, many_texts):
    targets = [Target(3, 5), Target(2, 7)]
    sizes = dict(n=4, n_effect=2, n_heldout=3, n_silent=5, max_tokens=10, min_context=4)
    chosen = top_prompts(lm, many_texts, targets, **sizes)
    for t in targets:
        split = chosen[t.id]
        # Build, effect and held-out prompts come from the pool's texts at positions 0, 1 and
        # 2 modulo 3; silent texts from the build part, where it fires least.
        index = {text: i for i, text in enumerate(many_texts)}
        for part, prompts in enumerate((split.build, split.effect, split.heldout)):
            assert all(index[text] % 3 == part for text in prompts.texts)
        assert all(index[text] % 3 == 0 for text in split.silent.texts)
        assert [len(p.texts) for p in (split.build, split.effect, split.heldout)] == [4, 2, 3]
        assert len(split.silent.texts) == 5
        assert max(split.silent.activations) < max(split.build.activations)
        for prompts in (split.build, split.effect, split.heldout):
            batch = prompts.batch(lm)
            acts = _mlp(lm, batch.input_ids, batch.attention_mask, layer=t.layer)[..., t.neuron]
            # The stored activation is the window's own, at its last token.
            torch.testing.assert_close(
                acts[:, -1], torch.tensor(prompts.activations), rtol=1e-4, atol=1e-4
            )
            assert prompts.activations == sorted(prompts.activations, reverse=True)
            for ids, text, offset, peak in zip(
                prompts.token_ids, prompts.texts, prompts.offsets, prompts.peaks, strict=True
            ):
                whole = lm.tokenizer(text)["input_ids"]
                assert ids == [whole[0]] + whole[offset : peak + 1]  # <bos>, then the window
                assert len(ids) <= 10 and peak - 1 >= 4  # 4 real tokens before the peak
        # One pass for both targets chooses what a pass for this target alone chooses.
        assert top_prompts(lm, many_texts, [t], **sizes)[t.id] == split


def test_prompts_need_context_and_never_repeat_a_window(lm):
    """A pool built to break both rules: short texts, the same text many times, texts that
    differ only before the window. Every prompt has the context asked for, and no window (or
    near-identical one) is used twice, within a part or across parts."""
    import random

    from tiny import WORDS

    rng = random.Random(1)
    body = [" ".join(rng.choice(WORDS) for _ in range(9)) for _ in range(12)]
    pool = []
    for i in range(90):
        if i % 5 == 0:
            pool.append(rng.choice(WORDS))  # one token: no context at all
        elif i % 5 == 1:
            pool.append(body[0])  # the same text again and again
        else:  # a varying start, then one of a few shared endings
            pool.append(" ".join(rng.choice(WORDS) for _ in range(6)) + " " + rng.choice(body))
    target = Target(3, 5)
    split = top_prompts(
        lm,
        pool,
        [target],
        n=8,
        n_effect=8,
        n_heldout=8,
        n_silent=4,
        max_tokens=12,
        min_context=6,
    )[target.id]
    windows = [
        tuple(ids) for part in (split.build, split.effect, split.heldout) for ids in part.token_ids
    ]
    assert windows and all(len(w) - 2 >= 6 for w in windows)  # <bos>, context, the peak
    tails = [w[-16:] for w in windows]
    assert len(set(tails)) == len(tails)
    assert not set(split.build.texts) & set(split.heldout.texts)


def test_removals_over_groups_of_prompts_equal_one_padded_batch(lm, many_texts):
    """The ablation fast path (prompts grouped by length, padding cut, started at the layer)
    gives the targets of one plain full-model forward over all prompts padded together."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from circuitmap.circuit.decompose import decompose, removal_forward
    from circuitmap.circuit.prompt_run import prompt_run
    from circuitmap.method.ablation import ablation_forward

    target = Target(3, 5)
    split = top_prompts(lm, many_texts, [target], n=7, n_heldout=1, n_silent=4, max_tokens=24)
    prompts = split[target.id].build
    run = prompt_run(lm, prompts, [1, 2], Target(3, 5))
    torch.manual_seed(0)
    dec = decompose(1, StandardSAE(StandardSAEConfig(d_in=lm.d_model, d_sae=16)), None, "zero")
    removed = (torch.rand(3, 16) > 0.5).float()
    removed[0] = 0.0  # row 0: nothing removed, the clean target
    error = torch.tensor([0.0, 1.0, 0.0])
    grouped, _ = removal_forward(lm, dec, run, removed, error, Target(3, 5), [])
    n, seq = run.input_ids.shape
    plain = ablation_forward(
        lm,
        run.input_ids.repeat(3, 1),
        run.attention_mask.repeat(3, 1),
        layer=1,
        edit=lambda hidden: dec.remove(
            hidden,
            run.real.repeat(3, 1),
            removed.repeat_interleave(n, 0),
            error.repeat_interleave(n, 0),
        ),
        target=Target(3, 5),
        read_layers=[],
    ).target.view(3, n)
    torch.testing.assert_close(grouped, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grouped[0], run.target, rtol=1e-4, atol=1e-4)
    assert sum(len(i) for i, _ in run.chunks(rows=3)) == n


def test_prompt_groups_are_the_cheapest_split_by_length():
    """Grouping prompts for batched forwards: the runs cover the sorted prompts once, in order,
    and no split into runs costs fewer padded token-rows plus forwards (every split of short
    lists tried); many rows per prompt keep unequal lengths apart, one row groups them."""
    import itertools
    import random

    from circuitmap.model.tokens import FORWARD_COST, length_splits

    def cost(lengths: list[int], rows: int, splits: list[tuple[int, int]]) -> int:
        return sum(rows * (j - i) * lengths[j - 1] + FORWARD_COST for i, j in splits)

    rng = random.Random(0)
    for _ in range(40):
        lengths = sorted(rng.randint(1, 64) for _ in range(rng.randint(1, 7)))
        rows, n = rng.choice([1, 4, 48]), len(lengths)
        splits = length_splits(lengths, rows)
        assert [i for i, _ in splits] == [0] + [j for _, j in splits[:-1]] and splits[-1][1] == n
        cheapest = min(
            cost(lengths, rows, list(zip((0, *cuts), (*cuts, n), strict=True)))
            for r in range(n)
            for cuts in itertools.combinations(range(1, n), r)
        )
        assert cost(lengths, rows, splits) == cheapest
    assert length_splits([6, 9, 16, 43], rows=48) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert length_splits([4, 6, 6, 9], rows=1) == [(0, 4)]


def test_bfloat16_matmuls_keep_sae_arithmetic_exact_and_removals_close(lm, many_texts):
    """Under the map's default precision the model's matmuls run in bfloat16, the SAE's encode
    and removal arithmetic stay float32 (bit-identical), and batched removals stay within
    bfloat16 rounding of float32."""
    from sae_lens import StandardSAE, StandardSAEConfig

    from circuitmap.circuit.decompose import decompose, removal_forward
    from circuitmap.circuit.prompt_run import prompt_run
    from circuitmap.model.forward import matmul_precision

    target = Target(3, 5)
    prompts = top_prompts(lm, many_texts, [target], n=4, n_heldout=1, n_silent=4)[target.id]
    run = prompt_run(lm, prompts.build, [1], target)
    torch.manual_seed(0)
    dec = decompose(1, StandardSAE(StandardSAEConfig(d_in=lm.d_model, d_sae=16)), None, "zero")
    removed = torch.eye(16)[:4]  # four single-feature removals
    error = torch.zeros(4)
    x = run.resid[1]
    exact = dec.encode(x), removal_forward(lm, dec, run, removed, error, target, [])[0]
    with matmul_precision(lm.input_device, "bfloat16"):
        assert (x @ x.transpose(-1, -2)).dtype == torch.bfloat16  # the context is on
        fast = dec.encode(x), removal_forward(lm, dec, run, removed, error, target, [])[0]
    assert torch.equal(exact[0][0], fast[0][0]) and torch.equal(exact[0][1], fast[0][1])
    scale = exact[1].abs().max()
    torch.testing.assert_close(fast[1], exact[1], rtol=0.05, atol=0.02 * scale.item())
    with matmul_precision(lm.input_device, "float32"):
        assert (x @ x.transpose(-1, -2)).dtype == torch.float32

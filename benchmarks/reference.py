"""The report's method run as it was written: every forward is a full-model forward (logits
included), the Patchscope's signal, noise and plain decodes are three separate runs, each layer
computes its own Mean Vector, and every feature ablation is its own forward.

Kept as the yardstick for circuitmap's fast path: the benchmarks time both, and the tests check
that the fast path (truncated forwards, one batched decode) gives the same numbers and text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from sae_lens import SAE
from torch import nn

from circuitmap.config import OptimConfig, PatchscopeConfig, Target
from circuitmap.method.ablation import control_features, feature_directions
from circuitmap.method.optimise import initial_vector, step_size
from circuitmap.method.patchscope import contrastive_logits, inject_position
from circuitmap.model.generate import control_tokens
from circuitmap.model.hooks import (
    edit_resid_pre,
    real_position_ids,
    record_mlp_post,
    record_resid_pre,
)
from circuitmap.model.load import LoadedModel
from circuitmap.model.tokens import encode


@contextmanager
def inject_resid_pre(
    model: nn.Module, layer: int, position: int, vectors: torch.Tensor
) -> Iterator[None]:
    """Within the block, resid_pre of ``layer`` at ``position`` is replaced by ``vectors``
    (batch, d_model), or (d_model,) broadcast over the batch (autograd-safe)."""

    def edit(hidden: torch.Tensor) -> torch.Tensor:  # (batch, seq, d_model)
        patched = hidden.clone()
        patched[:, position] = vectors.to(hidden.device, hidden.dtype)
        return patched

    with edit_resid_pre(model, layer, edit):
        yield


def ablate(
    x: torch.Tensor,
    feats: torch.Tensor,
    directions: torch.Tensor,
    replacement: torch.Tensor | None = None,
) -> torch.Tensor:
    """Remove features from ``x`` (..., d_model) whose activations are ``feats`` (..., k) and
    directions ``directions`` (k, d_model); ``replacement`` (k,) sets them to that value
    instead of 0. All k features are removed together."""
    delta = feats if replacement is None else feats - replacement  # (..., k)
    return x - delta @ directions  # (..., d_model)


def reference_optimise(
    lm: LoadedModel,
    *,
    layer: int,
    target: Target,
    mean: torch.Tensor,
    config: OptimConfig,
) -> tuple[torch.Tensor, list[float]]:
    """Adam on X with a full-model forward per step; returns (X (d_model,), trajectory)."""
    ids = lm.tokenizer(config.dummy_prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    x = torch.nn.Parameter(initial_vector(mean, config).float())
    optimiser = torch.optim.Adam([x], lr=step_size(config, mean))
    trajectory = []
    for _ in range(config.steps):
        optimiser.zero_grad()
        with (
            inject_resid_pre(lm.model, layer, -1, x),
            record_mlp_post(lm.model, target.layer) as mlp,
        ):
            lm.model(input_ids=ids)
        act = mlp[target.layer][0, -1, target.neuron]
        (-act).backward()
        optimiser.step()
        trajectory.append(act.item())
    return x.detach().clone(), trajectory


@torch.no_grad()
def _step_logits(lm: LoadedModel, ids: torch.Tensor, cache: object) -> tuple[torch.Tensor, object]:
    out = lm.model(input_ids=ids, cache=cache, use_cache=True)
    return out.logits[0, -1].float(), out.cache


@torch.no_grad()
def reference_patchscope(
    lm: LoadedModel,
    *,
    layer: int,
    signal: torch.Tensor,
    noise: torch.Tensor,
    config: PatchscopeConfig,
) -> tuple[str, str]:
    """(contrastive text, plain text) from separate batch-1 runs, each with its own KV cache."""
    prompt_ids = lm.tokenizer(config.prompt)["input_ids"]
    position = inject_position(lm.tokenizer, prompt_ids, config.inject_token)
    eos = lm.tokenizer.eos_token_id
    prompt = torch.tensor([prompt_ids], device=lm.input_device)

    def prefill(vector: torch.Tensor) -> tuple[torch.Tensor, object]:
        with inject_resid_pre(lm.model, layer, position, vector):
            return _step_logits(lm, prompt, None)

    (sig_logits, sig_cache), (noise_logits, noise_cache) = prefill(signal), prefill(noise)
    blocked = control_tokens(lm.tokenizer, sig_logits.shape[-1])

    def allowed(logits: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(blocked, float("-inf"))

    contrastive: list[int] = []
    for _ in range(config.max_new_tokens):
        scores = contrastive_logits(
            allowed(sig_logits), allowed(noise_logits), config.alpha, config.plausibility
        )
        contrastive.append(scores.argmax().item())
        if contrastive[-1] == eos:
            break
        nxt = torch.tensor([[contrastive[-1]]], device=lm.input_device)
        sig_logits, sig_cache = _step_logits(lm, nxt, sig_cache)
        noise_logits, noise_cache = _step_logits(lm, nxt, noise_cache)

    logits, cache = prefill(signal)
    plain: list[int] = []
    for _ in range(config.max_new_tokens):
        plain.append(allowed(logits).argmax().item())
        if plain[-1] == eos:
            break
        logits, cache = _step_logits(lm, torch.tensor([[plain[-1]]], device=lm.input_device), cache)
    decode = lm.tokenizer.decode
    return decode(contrastive, skip_special_tokens=True), decode(plain, skip_special_tokens=True)


@torch.no_grad()
def reference_mean(
    lm: LoadedModel, texts: list[str], layer: int, *, max_tokens: int, batch_size: int
) -> torch.Tensor:
    """(d_model,) the Mean Vector of one layer, from full-model forwards over ``texts``."""
    lasts = []
    for start in range(0, len(texts), batch_size):
        batch = encode(lm, texts[start : start + batch_size], max_tokens)
        ids, attn = batch.input_ids, batch.attention_mask
        with record_resid_pre(lm.model, [layer]) as resid:
            lm.model(input_ids=ids, attention_mask=attn, position_ids=real_position_ids(attn))
        lasts.append(resid[layer][:, -1].float().cpu())  # (batch, d_model)
    return torch.cat(lasts).double().mean(0).float()


@torch.no_grad()
def reference_effects(
    lm: LoadedModel,
    *,
    layer: int,
    target: Target,
    x: torch.Tensor,
    sae: SAE,
    top: list[int],
    n_controls: int,
    prompt_texts: list[str],
    max_tokens: int,
    dummy_prompt: str,
    later: dict[int, tuple[SAE, list[int]]],
) -> list[tuple[float, float]]:
    """Zero-ablation effects of ``top`` features (and ``n_controls`` controls each) with every
    ablation its own full-model forward: once on X (dummy prompt), once on the full prompts
    (the feature removed at every real token), reading the later layers' top features in the
    same forwards. Returns (vector_relative, prompt_relative) per top feature."""
    dummy = lm.tokenizer(dummy_prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    batch = encode(lm, prompt_texts, max_tokens)
    ids, attn, real = batch.input_ids, batch.attention_mask, batch.real  # (n, seq) each

    def run(
        input_ids: torch.Tensor, mask: torch.Tensor | None, edit: Callable
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        layers = sorted(later)
        with ExitStack() as stack:
            stack.enter_context(edit_resid_pre(lm.model, layer, edit))
            resid = stack.enter_context(record_resid_pre(lm.model, layers)) if layers else {}
            mlp = stack.enter_context(record_mlp_post(lm.model, target.layer))
            position_ids = None if mask is None else real_position_ids(mask)
            lm.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
        reads = {m: later[m][0].encode(h.float())[..., later[m][1]] for m, h in resid.items()}
        return mlp[target.layer][..., target.neuron].float(), reads  # (rows, seq)

    def on_x(features: list[int]) -> float:
        feats = sae.encode(x[None].float())[0, features]
        vector = ablate(x, feats, feature_directions(sae, features))

        def put(hidden: torch.Tensor) -> torch.Tensor:
            patched = hidden.clone()
            patched[:, -1] = vector.to(hidden.dtype)
            return patched

        return run(dummy, None, put)[0][0, -1].item()

    clean_acts, _ = run(ids, attn, lambda h: h)  # (n, seq)
    peaks = clean_acts.masked_fill(~real, float("-inf")).argmax(-1)  # (n,)
    rows = torch.arange(len(prompt_texts))
    clean_p = clean_acts[rows, peaks].mean().item()
    with record_resid_pre(lm.model, [layer]) as resid:
        lm.model(input_ids=ids, attention_mask=attn, position_ids=real_position_ids(attn))
    activity = sae.encode(resid[layer].float())[real].mean(0)
    controls = control_features(activity, top, n_controls)

    def on_prompts(feature: int) -> float:
        direction = feature_directions(sae, [feature])

        def remove(hidden: torch.Tensor) -> torch.Tensor:  # (n, seq, d_model)
            feats = sae.encode(hidden.float())[..., [feature]] * real[..., None]
            return ablate(hidden.float(), feats, direction).to(hidden.dtype)

        return run(ids, attn, remove)[0][rows, peaks].mean().item()

    clean_x = on_x([])
    effects = []
    for feature in top:
        drop_x, drop_p = clean_x - on_x([feature]), clean_p - on_prompts(feature)
        effects.append((drop_x / clean_x, drop_p / clean_p))
    on_x(top)  # all top features at once
    for feature in (c for row in controls for c in row):
        on_prompts(feature)
    return effects

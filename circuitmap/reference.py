"""The report's method run as it was written: every forward is a full-model forward (logits
included), and the Patchscope's signal, noise and plain decodes are three separate runs.

Kept as the yardstick for circuitmap's fast path: the benchmarks time both, and the tests check
that the fast path (truncated forwards, one batched decode) gives the same numbers and text.
"""

from __future__ import annotations

import torch

from .config import OptimConfig, PatchscopeConfig
from .hooks import inject_resid_pre, record_mlp_post
from .model import LoadedModel
from .optimise import initial_vector, step_size
from .patchscope import contrastive_logits, inject_position


def reference_optimise(
    lm: LoadedModel,
    *,
    layer: int,
    target_layer: int,
    neuron: int,
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
            record_mlp_post(lm.model, target_layer) as mlp,
        ):
            lm.model(input_ids=ids)
        act = mlp[target_layer][0, -1, neuron]
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
    position = inject_position(lm, prompt_ids, config.inject_token)
    eos = lm.tokenizer.eos_token_id
    prompt = torch.tensor([prompt_ids], device=lm.input_device)

    def prefill(vector: torch.Tensor) -> tuple[torch.Tensor, object]:
        with inject_resid_pre(lm.model, layer, position, vector):
            return _step_logits(lm, prompt, None)

    (sig_logits, sig_cache), (noise_logits, noise_cache) = prefill(signal), prefill(noise)
    contrastive: list[int] = []
    for _ in range(config.max_new_tokens):
        contrastive.append(
            contrastive_logits(sig_logits, noise_logits, config.alpha).argmax().item()
        )
        if contrastive[-1] == eos:
            break
        nxt = torch.tensor([[contrastive[-1]]], device=lm.input_device)
        sig_logits, sig_cache = _step_logits(lm, nxt, sig_cache)
        noise_logits, noise_cache = _step_logits(lm, nxt, noise_cache)

    logits, cache = prefill(signal)
    plain: list[int] = []
    for _ in range(config.max_new_tokens):
        plain.append(logits.argmax().item())
        if plain[-1] == eos:
            break
        logits, cache = _step_logits(lm, torch.tensor([[plain[-1]]], device=lm.input_device), cache)
    decode = lm.tokenizer.decode
    return decode(contrastive, skip_special_tokens=True), decode(plain, skip_special_tokens=True)

"""Real prompts where the target fires: corpus texts ranked by the target's activation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .baseline import left_padded, real_token_mask
from .hooks import record_mlp_post, run_body
from .model import LoadedModel


@dataclass
class Prompts:
    """Left-padded prompt batch and where in each prompt the target fires most."""

    texts: list[str]
    input_ids: torch.Tensor  # (n, seq)
    attention_mask: torch.Tensor  # (n, seq)
    positions: torch.Tensor  # (n,) index of the target's largest activation
    activations: list[float]  # the target's activation there


def encode_prompts(
    lm: LoadedModel, texts: list[str], max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    with left_padded(lm.tokenizer) as tok:
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens)
    return enc["input_ids"].to(lm.input_device), enc["attention_mask"].to(lm.input_device)


@torch.no_grad()
def top_prompts(
    lm: LoadedModel,
    texts: list[str],
    target: tuple[int, int],
    *,
    n: int,
    max_tokens: int = 64,
    batch_size: int = 8,
) -> Prompts:
    """The ``n`` texts (of ``texts``) on which the target neuron's largest activation over real
    tokens is highest, each with the position of that activation."""
    best: list[tuple[float, int]] = []  # (activation, text index)
    for start in range(0, len(texts), batch_size):
        ids, attn = encode_prompts(lm, texts[start : start + batch_size], max_tokens)
        with record_mlp_post(lm.model, target[0], stop=True) as mlp:
            run_body(lm.model, ids, attn)
        acts = mlp[target[0]][..., target[1]].float()  # (batch, seq)
        acts = acts.masked_fill(~real_token_mask(lm, ids, attn), float("-inf"))
        best += [(a.item(), start + i) for i, a in enumerate(acts.max(-1).values)]
    chosen = [texts[i] for _, i in sorted(best, key=lambda item: -item[0])[:n]]
    ids, attn = encode_prompts(lm, chosen, max_tokens)
    with record_mlp_post(lm.model, target[0], stop=True) as mlp:
        run_body(lm.model, ids, attn)
    acts = (
        mlp[target[0]][..., target[1]]
        .float()
        .masked_fill(~real_token_mask(lm, ids, attn), float("-inf"))
    )
    values, positions = acts.max(-1)  # (n,)
    return Prompts(chosen, ids, attn, positions.cpu(), values.cpu().tolist())

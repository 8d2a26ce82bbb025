"""Step 1 of the method: the Mean Vector at resid_pre of upstream layers over corpus texts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from circuitmap.model.hooks import record_mlp_post, record_resid_pre, run_body
from circuitmap.model.load import LoadedModel


@dataclass
class Baseline:
    """Per upstream layer: the Mean Vector and the range of norms seen; plus the target's scale."""

    means: dict[int, torch.Tensor]  # layer -> (d_model,) mean of last-token resid_pre
    norm_ranges: dict[int, tuple[float, float]]  # layer -> (min, max) of last-token resid norms
    vectors: dict[int, torch.Tensor]  # layer -> (n_texts, d_model) last-token resid_pre
    target_max: float | None  # max target activation over every real (non-pad, non-BOS) token
    n_texts: int


@contextmanager
def left_padded(tokenizer: PreTrainedTokenizerBase) -> Iterator[PreTrainedTokenizerBase]:
    """Left padding and left truncation (keep the last tokens), restored afterwards."""
    saved = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = saved


def real_token_mask(
    lm: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """(batch, seq) bool: tokens that are neither padding nor BOS (BOS resid norms are outliers)."""
    mask = attention_mask.bool()
    if lm.tokenizer.bos_token_id is not None:
        mask &= input_ids != lm.tokenizer.bos_token_id
    return mask


@torch.no_grad()
def compute_baseline(
    lm: LoadedModel,
    texts: list[str],
    layers: list[int],
    *,
    max_tokens: int = 32,
    batch_size: int = 8,
    target: tuple[int, int] | None = None,
) -> Baseline:
    """Mean of resid_pre at the last token of each text (last ``max_tokens`` tokens, left padding),
    for all ``layers`` in one pass per batch that stops at the deepest layer needed.

    ``target`` = (layer, neuron) also records that neuron's largest activation on the corpus;
    every layer in ``layers`` must then be below the target layer.
    """
    lasts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    target_max = float("-inf") if target else None
    for start in range(0, len(texts), batch_size):
        with left_padded(lm.tokenizer) as tok:
            enc = tok(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_tokens,
            )
        ids, attn = enc["input_ids"].to(lm.input_device), enc["attention_mask"].to(lm.input_device)
        with ExitStack() as stack:
            # Stop at the target's MLP if it is needed, else at the deepest resid_pre.
            resid = stack.enter_context(record_resid_pre(lm.model, layers, stop=target is None))
            mlp = (
                stack.enter_context(record_mlp_post(lm.model, target[0], stop=True))
                if target
                else {}
            )
            run_body(lm.model, ids, attn)
        for layer in layers:
            last = (
                resid[layer][:, -1].float().cpu()
            )  # (batch, d_model): left padding -> last is real
            lasts[layer].append(last)
        if target:
            acts = mlp[target[0]][..., target[1]].float().cpu()  # (batch, seq)
            mask = real_token_mask(lm, ids, attn).cpu()
            if mask.any():
                target_max = max(target_max, acts[mask].max().item())
    vectors = {layer: torch.cat(v) for layer, v in lasts.items()}
    norms = {layer: v.norm(dim=-1) for layer, v in vectors.items()}
    return Baseline(
        means={layer: v.double().mean(0).float() for layer, v in vectors.items()},
        norm_ranges={layer: (n.min().item(), n.max().item()) for layer, n in norms.items()},
        vectors=vectors,
        target_max=target_max,
        n_texts=len(texts),
    )

"""Real prompts where a target fires: corpus texts ranked by the target's activation.

A chosen prompt is cut right after the token where the target fires most. Attention is causal,
so the tokens after it cannot change anything read there, and cutting them makes every ablation
forward on the prompts cheaper; every prompt's read position is then its last token.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch

from .baseline import left_padded, real_token_mask
from .config import Target
from .hooks import record_mlp_post, run_body
from .model import LoadedModel


@dataclass
class Prompts:
    """Prompts for one target, each cut after the target's largest activation."""

    texts: list[str]
    token_ids: list[list[int]]  # each prompt's tokens up to and including the target's peak
    activations: list[float]  # the target's activation at that peak

    def batch(self, lm: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), both (n, seq), left-padded: the peak is column -1."""
        width = max(len(ids) for ids in self.token_ids)
        pad = lm.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in self.token_ids])
        attn = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in self.token_ids])
        return ids.to(lm.input_device), attn.to(lm.input_device)


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
    targets: list[Target],
    *,
    n: int,
    max_tokens: int = 64,
    batch_size: int = 8,
) -> dict[str, Prompts]:
    """For each target (by id), the ``n`` texts on which its largest activation over real tokens
    is highest. One pass over ``texts`` serves every target: it records the MLP of each target
    layer and stops at the deepest."""
    found: dict[str, list[tuple[float, int, list[int]]]] = {t.id: [] for t in targets}
    deepest = max(t.layer for t in targets)
    for start in range(0, len(texts), batch_size):
        ids, attn = encode_prompts(lm, texts[start : start + batch_size], max_tokens)
        with ExitStack() as stack:
            records = [
                stack.enter_context(record_mlp_post(lm.model, layer, stop=layer == deepest))
                for layer in {t.layer for t in targets}
            ]
            run_body(lm.model, ids, attn)
        mlp = {layer: post for record in records for layer, post in record.items()}
        real = real_token_mask(lm, ids, attn)  # (batch, seq)
        for t in targets:
            acts = mlp[t.layer][..., t.neuron].float()  # (batch, seq)
            values, peaks = acts.masked_fill(~real, float("-inf")).max(-1)  # (batch,)
            for i, (value, peak) in enumerate(zip(values.tolist(), peaks.tolist(), strict=True)):
                kept = ids[i, : peak + 1][attn[i, : peak + 1].bool()].tolist()
                found[t.id].append((value, start + i, kept))
    chosen = {}
    for t in targets:
        best = sorted(found[t.id], key=lambda item: -item[0])[:n]
        chosen[t.id] = Prompts(
            texts=[texts[i] for _, i, _ in best],
            token_ids=[kept for *_, kept in best],
            activations=[value for value, *_ in best],
        )
    return chosen

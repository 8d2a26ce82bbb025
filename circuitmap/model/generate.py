"""Greedy decoding of a batch of rows with a KV cache, where a caller-given rule picks each
row's next token from the batch's logits (so rows can share a contrastive choice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from circuitmap.model.load import LoadedModel


@torch.no_grad()
def greedy_decode(
    lm: LoadedModel,
    input_ids: torch.Tensor,
    choose: Callable[[torch.Tensor], torch.Tensor],
    max_new_tokens: int,
    after_prefill: Callable[[], None] | None = None,
) -> list[str]:
    """Decode ``input_ids`` (rows, seq); ``choose`` maps the last logits (rows, vocab) to the
    next tokens (rows,). A row stops at EOS; ``after_prefill`` runs once after the prompt."""
    eos = lm.tokenizer.eos_token_id
    tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    ids, cache = input_ids, None
    for _ in range(max_new_tokens):
        out = lm.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        if cache is None and after_prefill is not None:
            after_prefill()
        cache = out.cache
        nxt = choose(out.logits[:, -1].float())  # (rows,)
        for row, token in zip(tokens, nxt.tolist(), strict=True):
            if not row or row[-1] != eos:
                row.append(token)
        if all(row and row[-1] == eos for row in tokens):
            break
        ids = nxt[:, None]
    return [lm.tokenizer.decode(row, skip_special_tokens=True) for row in tokens]


def prompt_rows(lm: LoadedModel, prompt: str, rows: int) -> torch.Tensor:
    """(rows, seq): the prompt's ids repeated."""
    return torch.tensor([lm.tokenizer(prompt)["input_ids"]] * rows, device=lm.input_device)

"""Greedy decoding of a batch of rows with a KV cache, where a caller-given rule picks each
row's next token from the batch's logits (so rows can share a contrastive choice)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from circuitmap.model.text import window_text

if TYPE_CHECKING:
    from circuitmap.model.load import LoadedModel


# Added tokens that name a control, image or unused slot although a converted tokenizer may not
# flag them special (Gemma 3's GGUF tokenizer: <start_of_image>, <end_of_image>, [multimodal]);
# HTML-like added tokens (<table>, </b>) are text and stay allowed.
_CONTROL = re.compile(r"<[a-z]+(_[a-z0-9]+)+>|\[[a-z_]+\]|<unused\d+>")


def control_tokens(tokenizer: PreTrainedTokenizerBase, vocab: int) -> torch.Tensor:
    """(vocab,) bool: the tokens a decode never emits, the tokenizer's special and control
    tokens (Gemma's ``<start_of_image>``, ``<unused5>``, ``<mask>``, ...) except EOS, which ends
    a decode."""
    special = set(tokenizer.all_special_ids)
    special |= {
        i
        for i, added in tokenizer.added_tokens_decoder.items()
        if added.special or _CONTROL.fullmatch(added.content)
    }
    special.discard(tokenizer.eos_token_id)
    blocked = torch.zeros(vocab, dtype=torch.bool)
    blocked[[i for i in special if 0 <= i < vocab]] = True
    return blocked


@torch.no_grad()
def greedy_decode(
    lm: LoadedModel,
    input_ids: torch.Tensor,
    choose: Callable[[torch.Tensor], torch.Tensor],
    max_new_tokens: int,
    after_prefill: Callable[[], None] | None = None,
) -> list[str]:
    """Decode ``input_ids`` (rows, seq); ``choose`` maps the last logits (rows, vocab) to the
    next tokens (rows,). Control tokens (:func:`control_tokens`) have logit -inf and are never
    chosen. A row stops at EOS; ``after_prefill`` runs once after the prompt."""
    eos = lm.tokenizer.eos_token_id
    tokens: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    ids, cache, blocked = input_ids, None, None
    for _ in range(max_new_tokens):
        out = lm.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        if cache is None and after_prefill is not None:
            after_prefill()
        cache = out.cache
        logits = out.logits[:, -1].float()  # (rows, vocab)
        if blocked is None:
            blocked = control_tokens(lm.tokenizer, logits.shape[-1]).to(logits.device)
        nxt = choose(logits.masked_fill(blocked, float("-inf")))  # (rows,)
        for row, token in zip(tokens, nxt.tolist(), strict=True):
            if not row or row[-1] != eos:
                row.append(token)
        if all(row and row[-1] == eos for row in tokens):
            break
        ids = nxt[:, None]
    return [window_text(lm.tokenizer, row, 0, len(row), skip_special_tokens=True) for row in tokens]


def prompt_rows(lm: LoadedModel, prompt: str, rows: int) -> torch.Tensor:
    """(rows, seq): the prompt's ids repeated."""
    return torch.tensor([lm.tokenizer(prompt)["input_ids"]] * rows, device=lm.input_device)

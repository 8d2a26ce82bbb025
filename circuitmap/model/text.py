"""Token ids to text by whole characters: a character split over byte tokens (Gemma's
``<0xF0>`` ... tokens, or a byte-level BPE token ending mid-character) is never shown as U+FFFD."""

from __future__ import annotations

import re
from collections.abc import Sequence

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

REPLACEMENT = "\ufffd"  # what a tokenizer decodes an incomplete UTF-8 sequence to
MAX_CHAR_TOKENS = 4  # a UTF-8 character is at most 4 bytes, so at most 4 byte tokens
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _byte_form(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """A token that completes no character: its byte token name (``<0xF0>``) where the
    vocabulary has one, else its text with the broken bytes left out."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str) and _BYTE_TOKEN.fullmatch(piece):
        return piece
    return tokenizer.decode([token_id]).replace(REPLACEMENT, "")


def token_texts(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[str]:
    """One text per token of ``ids`` (same length): each token decoded alone, except that the
    tokens of a character split over several tokens show it whole on the token that completes
    it, and ``""`` on the ones before; a token that completes no character shows its bytes
    (``<0xF0>``)."""
    texts: list[str] = []
    pending: list[int] = []  # tokens of an incomplete character, waiting for the rest
    for token_id in map(int, ids):
        pending.append(token_id)
        text = tokenizer.decode(pending)
        if REPLACEMENT not in text:
            texts += [""] * (len(pending) - 1) + [text]
            pending = []
        elif len(pending) == MAX_CHAR_TOKENS:  # its first token begins no whole character
            texts.append(_byte_form(tokenizer, pending.pop(0)))
            while pending and REPLACEMENT not in (alone := tokenizer.decode(pending[:1])):
                texts.append(alone)
                pending.pop(0)
    return texts + [_byte_form(tokenizer, i) for i in pending]


def window_text(
    tokenizer: PreTrainedTokenizerBase,
    ids: Sequence[int],
    start: int,
    end: int,
    skip_special_tokens: bool = False,
) -> str:
    """The text of ``ids[start:end]`` with the window widened to whole characters: ``start``
    moves back to where the character it cuts begins, and a character left incomplete at
    ``end`` is dropped."""
    ids = [int(i) for i in ids]
    start, end = max(0, start), min(len(ids), end)

    def text(a: int, b: int) -> str:
        return tokenizer.decode(ids[a:b], skip_special_tokens=skip_special_tokens)

    for _ in range(MAX_CHAR_TOKENS - 1):  # back over the earlier bytes of a cut character
        cut = text(start, start + MAX_CHAR_TOKENS).startswith(REPLACEMENT)
        if start == 0 or not cut or REPLACEMENT not in text(start - 1, start):
            break
        start -= 1
    for _ in range(MAX_CHAR_TOKENS - 1):
        if end <= start or not text(start, end).endswith(REPLACEMENT):
            break
        end -= 1
    return text(start, end).replace(REPLACEMENT, "")

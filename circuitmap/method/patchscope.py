"""Step 4 of the method: the contrastive Patchscope decode.

The prompt (default "A detailed description of x is that") runs as a batch of three rows, with
resid_pre of the upstream layer at the injection token replaced during the prefill only:
row 0 by the signal (optimised X), row 1 by the noise (Mean Vector), row 2 by the signal again.
Rows 0 and 1 decode one shared continuation greedily from
``logits = L_signal + alpha * (L_signal - L_noise)`` among the tokens the signal finds plausible
(p_signal >= plausibility * max p_signal, Li et al. 2023); row 2 decodes greedily from its own
logits (the plain, non-contrastive decode) for comparison. Neither ever emits a control token.
The KV cache carries all three rows. Several (layer, signal, noise) jobs, e.g. every upstream
layer of a map, decode together as groups of three rows of one batch.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from circuitmap.errors import CircuitmapError
from circuitmap.model.generate import greedy_decode
from circuitmap.model.hooks import inject_rows

if TYPE_CHECKING:
    from circuitmap.config import PatchscopeConfig
    from circuitmap.model.load import LoadedModel


@dataclass
class PatchscopeResult:
    contrastive_text: str
    plain_text: str
    inject_position: int


def contrastive_logits(
    signal: torch.Tensor, noise: torch.Tensor, alpha: float, plausibility: float = 0.0
) -> torch.Tensor:
    """L_signal + alpha * (L_signal - L_noise) on (..., vocab) logits, and -inf for tokens the
    signal run finds implausible (p_signal < ``plausibility`` * max p_signal) or has ruled out
    (logit -inf)."""
    log_p = signal.log_softmax(-1)
    floor = log_p.max(-1, keepdim=True).values + math.log(plausibility) if plausibility else None
    keep = torch.isfinite(signal) if floor is None else torch.isfinite(signal) & (log_p >= floor)
    return torch.where(keep, signal + alpha * (signal - noise), float("-inf"))


def inject_position(tokenizer: PreTrainedTokenizerBase, input_ids: list[int], token: str) -> int:
    """Index of the last occurrence of ``token`` (one vocabulary token) in the prompt's ids."""
    token_ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(token_ids) != 1:
        raise CircuitmapError(
            f"injection token {token!r} is {len(token_ids)} tokens: it must be one token"
        )
    positions = [i for i, t in enumerate(input_ids) if t == token_ids[0]]
    if not positions:
        raise CircuitmapError(f"injection token {token!r} does not occur in the Patchscope prompt")
    return positions[-1]


def check_prompt(tokenizer: PreTrainedTokenizerBase, config: PatchscopeConfig) -> None:
    """A one-line error unless the inject token is one token that occurs in the prompt: checked
    before any work, with the tokenizer alone."""
    inject_position(tokenizer, tokenizer(config.prompt)["input_ids"], config.inject_token)


@torch.no_grad()
def patchscope_rows(
    lm: LoadedModel,
    *,
    layers: list[int],
    signals: torch.Tensor,
    noises: torch.Tensor,
    config: PatchscopeConfig,
) -> list[PatchscopeResult]:
    """Decode what each ``signals[j]`` (jobs, d_model) means at resid_pre of ``layers[j]``,
    against ``noises[j]``: all jobs as groups of three rows of one batched decode."""
    prompt_ids = lm.tokenizer(config.prompt)["input_ids"]
    position = inject_position(lm.tokenizer, prompt_ids, config.inject_token)
    jobs = len(layers)
    ids = torch.tensor([prompt_ids] * 3 * jobs, device=lm.input_device)  # (3 * jobs, seq)
    vectors = torch.stack([signals, noises, signals], 1).flatten(0, 1)  # (3 * jobs, d_model)

    def choose(logits: torch.Tensor) -> torch.Tensor:  # (3 * jobs, vocab) -> (3 * jobs,)
        grouped = logits.view(jobs, 3, -1)
        contrast = contrastive_logits(
            grouped[:, 0], grouped[:, 1], config.alpha, config.plausibility
        )
        shared = contrast.argmax(-1)
        return torch.stack([shared, shared, grouped[:, 2].argmax(-1)], 1).flatten()

    rows = [layer for layer in layers for _ in range(3)]
    injection = inject_rows(lm.model, rows, position, vectors)
    with ExitStack() as stack:
        stack.enter_context(injection)
        texts = greedy_decode(lm, ids, choose, config.max_new_tokens, after_prefill=stack.close)
    return [
        PatchscopeResult(
            contrastive_text=texts[3 * j], plain_text=texts[3 * j + 2], inject_position=position
        )
        for j in range(jobs)
    ]


def patchscope(
    lm: LoadedModel,
    *,
    layer: int,
    signal: torch.Tensor,
    noise: torch.Tensor,
    config: PatchscopeConfig,
) -> PatchscopeResult:
    """Decode what ``signal`` (d_model,) means at resid_pre of ``layer``, against ``noise``."""
    return patchscope_rows(
        lm, layers=[layer], signals=signal[None], noises=noise[None], config=config
    )[0]

"""Step 4 of the method: the contrastive Patchscope decode.

The prompt (default "A detailed description of x is that") runs as one batch of three rows, with
resid_pre of the upstream layer at the injection token replaced during the prefill only:
row 0 by the signal (optimised X), row 1 by the noise (Mean Vector), row 2 by the signal again.
Rows 0 and 1 decode one shared continuation greedily from
``logits = L_signal + alpha * (L_signal - L_noise)``; row 2 decodes greedily from its own logits
(the plain, non-contrastive decode) for comparison. The KV cache carries all three rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import PatchscopeConfig
from .errors import CircuitmapError
from .generate import greedy_decode
from .hooks import inject_resid_pre
from .model import LoadedModel


@dataclass
class PatchscopeResult:
    contrastive_text: str
    plain_text: str
    inject_position: int


def contrastive_logits(signal: torch.Tensor, noise: torch.Tensor, alpha: float) -> torch.Tensor:
    """L_signal + alpha * (L_signal - L_noise), elementwise on (..., vocab) logits."""
    return signal + alpha * (signal - noise)


def inject_position(lm: LoadedModel, input_ids: list[int], token: str) -> int:
    """Index of the last occurrence of ``token`` (one vocabulary token) in the prompt's ids."""
    token_ids = lm.tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(token_ids) != 1:
        raise CircuitmapError(
            f"injection token {token!r} is {len(token_ids)} tokens: it must be one token"
        )
    positions = [i for i, t in enumerate(input_ids) if t == token_ids[0]]
    if not positions:
        raise CircuitmapError(f"injection token {token!r} does not occur in the Patchscope prompt")
    return positions[-1]


@torch.no_grad()
def patchscope(
    lm: LoadedModel,
    *,
    layer: int,
    signal: torch.Tensor,
    noise: torch.Tensor,
    config: PatchscopeConfig,
) -> PatchscopeResult:
    """Decode what ``signal`` (d_model,) means at resid_pre of ``layer``, against ``noise``."""
    prompt_ids = lm.tokenizer(config.prompt)["input_ids"]
    position = inject_position(lm, prompt_ids, config.inject_token)
    ids = torch.tensor([prompt_ids] * 3, device=lm.input_device)  # (3, seq)
    vectors = torch.stack([signal, noise, signal])  # (3, d_model)

    def choose(logits: torch.Tensor) -> torch.Tensor:  # (3, vocab) -> (3,)
        shared = contrastive_logits(logits[0], logits[1], config.alpha).argmax()
        return torch.stack([shared, shared, logits[2].argmax()])

    with inject_resid_pre(lm.model, layer, position, vectors) as injection:
        texts = greedy_decode(
            lm,
            ids,
            choose,
            config.max_new_tokens,
            after_prefill=lambda: setattr(injection, "active", False),
        )
    return PatchscopeResult(
        contrastive_text=texts[0],
        plain_text=texts[2],
        inject_position=position,
    )

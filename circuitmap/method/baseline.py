"""Step 1 of the method: the Mean Vector at resid_pre of upstream layers over corpus texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.model.forward import run_recorded
from circuitmap.model.tokens import batches

if TYPE_CHECKING:
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel


@dataclass
class Baseline:
    """Per upstream layer: the Mean Vector and the range of norms seen; plus the target's scale."""

    means: dict[int, torch.Tensor]  # layer -> (d_model,) mean of last-token resid_pre
    norm_ranges: dict[int, tuple[float, float]]  # layer -> (min, max) of last-token resid norms
    vectors: dict[int, torch.Tensor]  # layer -> (n_texts, d_model) last-token resid_pre
    target_max: float | None  # max target activation over every real (non-pad, non-BOS) token
    n_texts: int


@torch.no_grad()
def compute_baseline(
    lm: LoadedModel,
    texts: list[str],
    layers: list[int],
    *,
    max_tokens: int = 32,
    batch_size: int = 8,
    target: Target | None = None,
) -> Baseline:
    """Mean of resid_pre at the last token of each text (last ``max_tokens`` tokens, left padding),
    for all ``layers`` in one pass per batch that stops at the deepest layer needed.

    ``target`` = (layer, neuron) also records that neuron's largest activation on the corpus;
    every layer in ``layers`` must then be below the target layer. Activations that overflow the
    model's dtype (NaN or infinity) are a one-line CircuitmapError naming the layer and dtype.
    """
    lasts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    target_max = float("-inf") if target else None
    for batch in batches(lm, texts, max_tokens, batch_size):
        # Stops at the target's MLP if it is needed, else at the deepest resid_pre.
        out = run_recorded(
            lm.model,
            batch.input_ids,
            batch.attention_mask,
            resid=layers,
            mlp=[target.layer] if target else (),
        )
        for layer in layers:
            # (batch, d_model): with left padding the last token is real
            lasts[layer].append(out.resid[layer][:, -1].float().cpu())
        if target and batch.real.any():
            acts = out.mlp[target.layer][..., target.neuron].float()  # (batch, seq)
            target_max = max(target_max, acts[batch.real].max().item())
    vectors = {layer: torch.cat(v) for layer, v in lasts.items()}
    for layer, v in vectors.items():
        if not bool(torch.isfinite(v).all()):
            raise CircuitmapError(
                f"resid_pre of layer {layer} holds NaN or infinite values in "
                f"{str(lm.model.dtype).removeprefix('torch.')}: the model's activations overflow "
                "that dtype; use --dtype float32"
            )
    norms = {layer: v.norm(dim=-1) for layer, v in vectors.items()}
    return Baseline(
        means={layer: v.double().mean(0).float() for layer, v in vectors.items()},
        norm_ranges={layer: (n.min().item(), n.max().item()) for layer, n in norms.items()},
        vectors=vectors,
        target_max=target_max,
        n_texts=len(texts),
    )

"""Residual-stream activations of many layers, collected in one pass over a corpus."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from circuitmap.model.forward import run_recorded
from circuitmap.model.tokens import batches

if TYPE_CHECKING:
    from circuitmap.model.load import LoadedModel


@torch.no_grad()
def collect_activations(
    lm: LoadedModel,
    texts: Iterable[str],
    layers: list[int],
    *,
    n_tokens: int,
    context: int = 128,
    batch_size: int = 8,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[int, torch.Tensor]:
    """resid_pre of every layer in ``layers`` on the first ``n_tokens`` real tokens of ``texts``
    (BOS and padding dropped: BOS norms are outliers): layer -> (n_tokens, d_model) in ``dtype``.

    Each batch runs once, up to the deepest layer asked for. Fewer rows come back if the texts
    run out. bfloat16 keeps float32's range: deep Gemma layers have tokens past float16's 65504.
    """
    store = {layer: torch.empty(n_tokens, lm.d_model, dtype=dtype) for layer in layers}
    filled = 0
    with tqdm(total=n_tokens, desc=f"activations of layers {layers}", unit="tok") as bar:
        for batch in batches(lm, texts, context, batch_size):
            out = run_recorded(lm.model, batch.input_ids, batch.attention_mask, resid=layers)
            take = min(int(batch.real.sum()), n_tokens - filled)
            for layer in layers:
                real = out.resid[layer][batch.real]  # (real tokens, d_model)
                store[layer][filled : filled + take] = real[:take].to("cpu", dtype)
            filled += take
            bar.update(take)
            if filled == n_tokens:
                break
    return {layer: acts[:filled] for layer, acts in store.items()}

"""Residual-stream activations of many layers, collected in one pass over a corpus."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

from circuitmap.method.baseline import left_padded, real_token_mask
from circuitmap.model.hooks import record_resid_pre, run_body
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
    texts = iter(texts)
    with tqdm(total=n_tokens, desc=f"activations of layers {layers}", unit="tok") as bar:
        while filled < n_tokens:
            batch = [t for _, t in zip(range(batch_size), texts, strict=False)]
            if not batch:
                break
            with left_padded(lm.tokenizer) as tok:
                enc = tok(
                    batch, return_tensors="pt", padding=True, truncation=True, max_length=context
                )
            ids = enc["input_ids"].to(lm.input_device)
            attn = enc["attention_mask"].to(lm.input_device)
            with record_resid_pre(lm.model, layers, stop=True) as resid:
                run_body(lm.model, ids, attn)
            mask = real_token_mask(lm, ids, attn)  # (batch, seq)
            take = min(int(mask.sum()), n_tokens - filled)
            for layer in layers:
                store[layer][filled : filled + take] = resid[layer][mask][:take].to("cpu", dtype)
            filled += take
            bar.update(take)
    return {layer: acts[:filled] for layer, acts in store.items()}

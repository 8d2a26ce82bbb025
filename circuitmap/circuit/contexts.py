"""Where a circuit's features fire on the build prompts: the short labels and snippets a reader
sees first. A feature's label is the few distinct tokens where it is most active; each snippet
is the text before that token, the token, and its activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.text import token_texts, window_text

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.model.load import LoadedModel

CONTEXT_TOKENS = 10  # tokens of text shown before the firing token


@dataclass
class Context:
    before: str  # the text before the token (up to CONTEXT_TOKENS tokens)
    token: str  # the token where the feature fires
    activation: float


def _one_line(text: str) -> str:
    return " ".join(text.replace("\n", " ⏎ ").split())


@torch.no_grad()
def feature_contexts(
    lm: LoadedModel, dec: LayerDecomposition, run: PromptRun, features: list[int], n: int = 3
) -> list[list[Context]]:
    """For each feature, its ``n`` strongest (prompt, token) activations on ``run``'s prompts,
    at most one per prompt."""
    if not features:
        return []
    f, _ = dec.encode(run.resid[dec.layer])  # (n_prompts, seq, d_sae)
    acts = f[..., features].masked_fill(~run.real[..., None], float("-inf"))  # (p, seq, k)
    best, where = acts.max(1)  # (p, k): each prompt's peak for each feature
    ids = run.input_ids.cpu()
    out = []
    for j in range(len(features)):
        found = []
        for prompt in best[:, j].argsort(descending=True)[:n].tolist():
            value = best[prompt, j].item()
            if value <= 0:
                break
            pos = where[prompt, j].item()
            row = ids[prompt][run.attention_mask[prompt].cpu().bool()]  # real ids of the prompt
            pos -= len(ids[prompt]) - len(row)  # index into the unpadded prompt
            before = window_text(lm.tokenizer, row, pos - CONTEXT_TOKENS, pos)
            token = token_texts(lm.tokenizer, row[: pos + 1])[pos]
            found.append(Context(_one_line(before), _one_line(token), value))
        out.append(found)
    return out

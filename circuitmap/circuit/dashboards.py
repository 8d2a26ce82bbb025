"""Per-node dashboards for the explorer's panel, computed once per target at the end of a map:
where each circuit feature fires over a slice of the corpus (its strongest contexts, at most one
per text, and a histogram of its activations), the tokens its decoder direction promotes through
the unembedding, and, for the target, the corpus texts where it fires most (the map's build
prompts, chosen from the prompt pool) and its histogram.

Call point: :func:`circuitmap.mapping.run.run_dashboards` (a worker unit,
:meth:`circuitmap.mapping.worker.Worker.dashboards`) after the map's units; the results are saved
to ``targets/<id>/dashboards.json`` and set on the graph's nodes by
:func:`circuitmap.mapping.run.run_map`.

Cost: one forward over the first :data:`TEXTS` corpus texts (at most :data:`TOKENS` tokens each),
stopped after the target's MLP, recording resid_pre at the mapped layers; one SAE encode per layer;
and per layer one (kept features, d_model) x (d_model, vocab) product for the promoted tokens
(the decoder direction times the unembedding, without the final norm, as Neuronpedia's "top
logits" are read). A token's text is decoded by whole characters: a token that is only part of a
character's bytes is shown as its vocabulary entry, and a snippet never starts or ends inside one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch

from circuitmap.model.forward import full_precision, run_recorded
from circuitmap.model.generate import control_tokens
from circuitmap.model.tokens import batches

if TYPE_CHECKING:
    from circuitmap.circuit.prompts import Prompts
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE

TEXTS = 32  # corpus texts read for the dashboards
TOKENS = 64  # their last tokens
TOP = 5  # contexts (texts) and ...
PROMOTED = 10  # ... promoted tokens listed per node
BINS = 20  # histogram bins
BEFORE, AFTER = 10, 4  # tokens of context around the firing token
BAD = "\ufffd"


def whole_text(tokenizer: Any, ids: list[int]) -> str:
    """``ids`` decoded on one line (whitespace runs and newlines as one space and ⏎), without
    the partial characters a cut at either end leaves (U+FFFD)."""
    text = tokenizer.decode(ids)
    start, end = 0, len(ids)
    while BAD in text[:1] and start < end:  # a character whose first bytes were cut off
        start += 1
        text = tokenizer.decode(ids[start:end])
    while BAD in text[-1:] and end > start:  # a character whose last bytes are cut off
        end -= 1
        text = tokenizer.decode(ids[start:end])
    return re.sub(r"\s+", " ", text.replace(BAD, "").replace("\n", " ⏎ "))


def token_text(tokenizer: Any, token: int) -> str:
    """One token's text; its vocabulary entry (such as ``<0xE2>``) when it is part of a
    character, and ``U+FFFD`` written out for the replacement character itself."""
    text = tokenizer.decode([token])
    if BAD in text:
        text = str(tokenizer.convert_ids_to_tokens(token))
    return text.replace(BAD, "U+FFFD")


def _histogram(values: torch.Tensor, active_only: bool) -> dict[str, Any]:
    """Counts over :data:`BINS` equal bins of ``values`` (the active ones for a feature)."""
    shown = values[values > 0] if active_only else values
    hist = {"tokens": int(values.numel()), "active": int((values > 0).sum())}
    if shown.numel() == 0:
        return hist | {"edges": [0.0, 0.0], "counts": [0]}
    low, high = float(shown.min()), float(shown.max())
    counts = torch.histc(shown.float(), bins=BINS, min=low, max=high if high > low else low + 1)
    step = ((high if high > low else low + 1) - low) / BINS
    return hist | {
        "edges": [low + i * step for i in range(BINS + 1)],
        "counts": [int(c) for c in counts.tolist()],
    }


def _contexts(
    lm: LoadedModel, values: torch.Tensor, where: list[tuple[int, int]], rows: list[list[int]]
) -> list[dict[str, Any]]:
    """The :data:`TOP` strongest positive ``values`` (tokens,), at most one per text; ``where``
    gives each token's (text, position in ``rows[text]``)."""
    found: list[dict[str, Any]] = []
    seen = set()
    for i in values.argsort(descending=True).tolist():
        if len(found) == TOP or values[i] <= 0:
            break
        text, pos = where[i]
        if text in seen:
            continue
        seen.add(text)
        found.append(_snippet(lm, rows[text], pos, float(values[i])))
    return found


def _snippet(lm: LoadedModel, row: list[int], pos: int, activation: float) -> dict[str, Any]:
    """Token ``pos`` of ``row`` with :data:`BEFORE` tokens before it (BOS left out) and
    :data:`AFTER` after it."""
    first = 1 if row and row[0] == lm.tokenizer.bos_token_id else 0
    return {
        "before": whole_text(lm.tokenizer, row[max(first, pos - BEFORE) : pos]),
        "token": token_text(lm.tokenizer, row[pos]),
        "after": whole_text(lm.tokenizer, row[pos + 1 : pos + 1 + AFTER]),
        "activation": activation,
    }


def peak_contexts(lm: LoadedModel, prompts: Prompts) -> list[dict[str, Any]]:
    """The :data:`TOP` strongest of a target's prompts (each cut right after its peak, strongest
    first: the map's build prompts, the pool's texts where it fires most) as snippets."""
    return [
        _snippet(lm, row, len(row) - 1, activation)
        for row, activation in zip(prompts.token_ids[:TOP], prompts.activations, strict=False)
    ]


@torch.no_grad()
def _promoted(lm: LoadedModel, sae: LayerSAE, features: list[int]) -> list[list[dict[str, Any]]]:
    """Per feature, the :data:`PROMOTED` tokens whose unembedding its decoder direction raises
    most (control tokens, which no text contains, left out)."""
    unembed = lm.model.get_output_embeddings().weight  # (vocab, d_model)
    blocked = control_tokens(lm.tokenizer, len(unembed)).to(unembed.device)  # (vocab,)
    with full_precision(unembed.device):
        directions = sae.sae.W_dec[features].to(unembed.device, unembed.dtype)  # (k, d_model)
        raised = (directions @ unembed.T).masked_fill(blocked, float("-inf"))  # (k, vocab)
        logits, tokens = raised.topk(PROMOTED, dim=-1)  # (k, PROMOTED)
    return [
        [
            {"token": token_text(lm.tokenizer, t), "logit": float(v)}
            for t, v in zip(ts, vs, strict=True)
        ]
        for ts, vs in zip(tokens.tolist(), logits.tolist(), strict=True)
    ]


@torch.no_grad()
def node_dashboards(
    lm: LoadedModel,
    saes: dict[int, LayerSAE],
    target: Target,
    features: dict[int, list[int]],
    texts: list[str],
    strongest: Prompts,
) -> dict[str, Any]:
    """``{"target": {...}, "features": {layer: {feature: {...}}}}`` (keys as text, JSON's way):
    the target's ``top_prompts`` (from ``strongest``, its prompts strongest first) and each
    feature's ``corpus_contexts`` (over ``texts``), lists of ``{before, token, after,
    activation}``; ``activation_histogram`` (over ``texts``) ``{edges, counts, active,
    tokens}``; each feature's ``promoted_tokens``, a list of ``{token, logit}``."""
    layers = sorted(features)
    acts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    target_acts, where, rows = [], [], []
    for batch in batches(lm, texts, TOKENS):
        rec = run_recorded(
            lm.model, batch.input_ids, batch.attention_mask, resid=layers, mlp=[target.layer]
        )
        real = batch.real.cpu()  # (b, seq)
        for b in range(len(real)):
            kept = batch.attention_mask[b].bool().cpu()
            offset = int((~kept).sum())  # left padding
            rows.append(batch.input_ids[b][kept].tolist())
            where += [(len(rows) - 1, p - offset) for p in real[b].nonzero()[:, 0].tolist()]
        target_acts.append(rec.mlp[target.layer][..., target.neuron].float().cpu()[real])
        for layer in layers:
            sae = saes[layer].sae
            with full_precision(sae.W_enc.device):
                f = sae.encode(rec.resid[layer].float().to(sae.W_enc.device))  # (b, seq, d_sae)
            acts[layer].append(f[..., features[layer]].float().cpu()[real])  # (real, k)
    on_target = torch.cat(target_acts)
    out: dict[str, Any] = {
        "target": {
            "top_prompts": peak_contexts(lm, strongest),
            "activation_histogram": _histogram(on_target, active_only=False),
        },
        "features": {},
    }
    for layer in layers:
        values = torch.cat(acts[layer])  # (tokens, k)
        promoted = _promoted(lm, saes[layer], features[layer])
        out["features"][str(layer)] = {
            str(feature): {
                "corpus_contexts": _contexts(lm, values[:, j], where, rows),
                "activation_histogram": _histogram(values[:, j], active_only=True),
                "promoted_tokens": promoted[j],
            }
            for j, feature in enumerate(features[layer])
        }
    return out

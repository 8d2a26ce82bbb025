"""The report's question, answered per layer: do the features of the optimised X coincide with
the features that drive the target on real text?

For each mapped layer: X's top ``X_TOP`` added features (what the optimisation added over the
Mean Vector, :mod:`circuitmap.sae.features`), each one's rank among all of the layer's features
by attribution to the target on the build prompts (0: first; the first-order estimate of
:mod:`circuitmap.circuit.attribution`), and the share of them among the layer's top
``CIRCUIT_TOP`` by that attribution, the features that drive the target on real text.
And the decode of the circuit's own features next to X's: the contrastive Patchscope of the
Mean Vector plus the directions of the layer's top ``X_TOP`` circuit features, each at its mean
activation at the prompts' peaks, against the Mean Vector (Ghandeharioun et al. 2024,
*Patchscopes*; the contrast of :mod:`circuitmap.method.patchscope`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.method.patchscope import patchscope_rows

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.sweep import LayerSearch
    from circuitmap.config import PatchscopeConfig
    from circuitmap.model.load import LoadedModel

X_TOP = 5  # X's features compared
CIRCUIT_TOP = 10  # with the circuit's top features of the layer


@dataclass
class XCheck:
    """X's top features at one layer against the layer's circuit."""

    features: list[int]  # X's top added features, most added first
    ranks: list[int]  # each one's attribution rank among the layer's features (0: first)
    overlap: float | None  # share of ``features`` among the layer's top CIRCUIT_TOP


def check_x(search: LayerSearch, scores: torch.Tensor) -> XCheck:
    """Compare X's top added features (``search``) with every feature's mean attribution on
    the build prompts, ``scores`` (d_sae,) (:func:`~circuitmap.circuit.attribution.attribution`)."""
    features = [f.index for f in search.features.added[:X_TOP]]
    ranks = [int((scores > scores[f]).sum()) for f in features]
    overlap = sum(r < CIRCUIT_TOP for r in ranks) / len(ranks) if ranks else None
    return XCheck(features, ranks, overlap)


@torch.no_grad()
def circuit_decodes(
    lm: LoadedModel,
    config: PatchscopeConfig,
    means: dict[int, torch.Tensor],
    kept: dict[int, list[int]],
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
) -> dict[int, str]:
    """Per layer of ``kept`` (its circuit features, best first) with at least one feature: the
    contrastive decode of the Mean Vector (``means[layer]``, (d_model,)) plus its top ``X_TOP``
    features' directions at their mean activation on ``run``'s peaks, in one batched decode."""
    layers = [layer for layer in sorted(kept) if kept[layer]]
    if not layers:
        return {}
    signals = []
    for layer in layers:
        dec = decompositions[layer]
        top = torch.tensor(kept[layer][:X_TOP], dtype=torch.long)
        f, _ = dec.encode(run.resid[layer][:, -1])  # (n, d_sae) at the peaks
        amounts = f[:, top].mean(0)  # (X_TOP,)
        signals.append(means[layer].float() + amounts @ dec.directions[top].float().cpu())
    noises = torch.stack([means[layer].float() for layer in layers])  # (layers, d_model)
    scopes = patchscope_rows(
        lm, layers=layers, signals=torch.stack(signals), noises=noises, config=config
    )
    return {layer: s.contrastive_text for layer, s in zip(layers, scopes, strict=True)}

"""Restarts: does the same SAE feature come back when the gradient ascent starts elsewhere?

Starts are the map's own start (the reference: the Mean Vector by default) and K resid_pre
vectors of the layer drawn from the corpus (seeded); all run together as rows of one batched
optimisation. Each start is compared by the features its ascent adds (X's SAE code minus its
start's, which for the default reference is the Mean Vector's): top-1 agreement with the
reference, Jaccard of the top-k sets, and the consensus (the features in the top-k of at least
half of the starts). A start's own features are not counted: they say where it began, not what
the ascent found.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.method.baseline import compute_baseline
from circuitmap.method.optimise import initial_vector, optimise_rows
from circuitmap.method.x_space import LayerSpace

if TYPE_CHECKING:
    from circuitmap.config import OptimConfig, Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE, SAEStore


@dataclass
class RestartReport:
    layer: int
    top_sets: list[list[int]]  # top-k features each start's ascent adds; row 0: the reference start
    activations: list[float]  # final target activation of each start
    top1_agreement: float | None  # share of other starts whose top-1 is the reference's
    jaccard: (
        float | None
    )  # mean Jaccard similarity of other starts' top-k sets with the reference's
    agreement: dict[int, float]  # reference top-k feature -> share of other starts having it
    consensus: list[int]  # features in the top-k of at least half of the starts, commonest first
    corpus_max: float | None = None  # the target's largest corpus activation

    @property
    def level_spread(self) -> tuple[float, float] | None:
        """(min, max) over all starts of the final activation / the corpus maximum (None: the
        maximum is unknown or not positive)."""
        if self.corpus_max is None or self.corpus_max <= 0:
            return None
        return min(self.activations) / self.corpus_max, max(self.activations) / self.corpus_max


def restart_starts(
    mean: torch.Tensor, corpus: torch.Tensor, config: OptimConfig, n_restarts: int
) -> torch.Tensor:
    """(1 + n_restarts, d_model): ``config.init``'s start (the Mean Vector by default), then
    ``n_restarts`` rows of ``corpus`` (n, d_model; the layer's corpus resid_pre vectors) drawn
    without replacement with seed ``config.seed + 1`` (with replacement when n is smaller)."""
    gen = torch.Generator().manual_seed(config.seed + 1)
    n = len(corpus)
    if n >= n_restarts:
        rows = torch.randperm(n, generator=gen)[:n_restarts]
    else:
        rows = torch.randint(n, (n_restarts,), generator=gen)
    return torch.cat([initial_vector(mean, config)[None], corpus[rows].float()])


@torch.no_grad()
def added_codes(
    layer_sae: LayerSAE, vectors: torch.Tensor, codes: torch.Tensor | None, starts: torch.Tensor
) -> torch.Tensor:
    """(rows, d_sae): what each row's ascent added to its start (``starts``, (rows, d_model))
    in SAE features: X's ``codes`` (space ``"sae"``) or else the encoding of X (``vectors``,
    (rows, d_model)), minus the start's encoding."""
    sae = layer_sae.sae
    encode = lambda x: sae.encode(x.float().to(sae.W_enc.device)).float().cpu()  # noqa: E731
    return (codes if codes is not None else encode(vectors)) - encode(starts)


def compare_starts(
    layer: int, added: torch.Tensor, final: torch.Tensor, top_k: int
) -> RestartReport:
    """Compare the features that optimised starts add (``added``, (starts, d_sae), row 0 the
    reference start); ``final`` (starts,) are their target activations."""
    tops = added.topk(min(top_k, added.shape[1]), dim=-1).indices.tolist()
    reference, others = tops[0], tops[1:]
    counts = Counter(f for top in tops for f in top)
    consensus = [f for f, c in counts.most_common() if c >= len(tops) / 2]
    if not others:
        return RestartReport(layer, tops, final.tolist(), None, None, {}, consensus)
    n = len(others)
    return RestartReport(
        layer=layer,
        top_sets=tops,
        activations=final.tolist(),
        top1_agreement=sum(t[0] == reference[0] for t in others) / n,
        jaccard=sum(len(set(t) & set(reference)) / len(set(t) | set(reference)) for t in others)
        / n,
        agreement={f: sum(f in t for t in others) / n for f in reference},
        consensus=consensus,
    )


def restart_report(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    *,
    target: Target,
    mean: torch.Tensor,
    corpus: torch.Tensor,
    config: OptimConfig,
    n_restarts: int,
    top_k: int = 5,
    norm_range: tuple[float, float] | None = None,
    corpus_max: float | None = None,
) -> RestartReport:
    """Optimise from ``config.init``'s start and ``n_restarts`` corpus vectors (``corpus``,
    (n, d_model)) and compare the SAE features their ascents add."""
    starts = restart_starts(mean, corpus, config, n_restarts)
    bound = norm_range if config.norm_constraint else None
    space = LayerSpace(layer_sae.layer, mean, bound, layer_sae.sae)
    ascent = optimise_rows(
        lm,
        target=target,
        spaces=[space] * len(starts),
        inits=starts,
        config=config,
        corpus_max=corpus_max,
    )
    added = added_codes(layer_sae, ascent.vectors, ascent.codes, starts)
    report = compare_starts(layer_sae.layer, added, ascent.final, top_k)
    return dataclasses.replace(report, corpus_max=corpus_max)


def restart_layers(
    lm: LoadedModel,
    saes: SAEStore,
    target: Target,
    layers: list[int],
    texts: list[str],
    config: OptimConfig,
    n_restarts: int,
    top_k: int = 5,
) -> list[RestartReport]:
    """:func:`restart_report` at each of ``layers``, from the Mean Vectors and corpus vectors of
    ``texts`` (and the target's largest activation on them, for ``config.level``)."""
    base = compute_baseline(lm, texts, layers, target=target)
    return [
        restart_report(
            lm,
            saes.layer(layer),
            target=target,
            mean=base.means[layer],
            corpus=base.vectors[layer],
            config=config,
            n_restarts=n_restarts,
            top_k=top_k,
            norm_range=base.norm_ranges[layer],
            corpus_max=base.target_max,
        )
        for layer in layers
    ]

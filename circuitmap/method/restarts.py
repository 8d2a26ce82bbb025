"""Random restarts: does the same SAE feature come back when the gradient ascent starts
elsewhere? Starts are the map's own start (the reference: the Mean Vector by default) and K random
directions scaled to the Mean Vector's norm; all run together as rows of one batched
optimisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.method.baseline import compute_baseline
from circuitmap.method.optimise import initial_vector, optimise_rows, step_size

if TYPE_CHECKING:
    from circuitmap.config import OptimConfig, Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE, SAEStore


@dataclass
class RestartReport:
    layer: int
    top_sets: list[list[int]]  # top-k features of each start's X; row 0 is the reference start
    activations: list[float]  # final target activation of each start
    top1_agreement: float  # fraction of random starts whose top-1 feature is the reference's
    jaccard: float  # mean Jaccard similarity of random starts' top-k sets with the reference's
    agreement: dict[int, float]  # reference top-k feature -> fraction of random starts having it

    @property
    def activation_spread(self) -> tuple[float, float]:
        """(min, max) of the final activation over all starts."""
        return min(self.activations), max(self.activations)


@torch.no_grad()
def _top_sets(layer_sae: LayerSAE, vectors: torch.Tensor, k: int) -> list[list[int]]:
    acts = layer_sae.sae.encode(vectors.float().to(layer_sae.sae.W_enc.device))  # (starts, d_sae)
    return acts.topk(min(k, acts.shape[1]), dim=-1).indices.tolist()


def restart_starts(mean: torch.Tensor, config: OptimConfig, n_restarts: int) -> torch.Tensor:
    """(1 + n_restarts, d_model): ``config.init``'s start (the Mean Vector by default), then
    random directions of the Mean Vector's norm seeded ``config.seed + 1 ...``."""
    return torch.stack(
        [initial_vector(mean, config)]
        + [
            initial_vector(mean, dataclasses.replace(config, init="random", seed=config.seed + i))
            for i in range(1, n_restarts + 1)
        ]
    )


def restart_report(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    *,
    target: Target,
    mean: torch.Tensor,
    config: OptimConfig,
    n_restarts: int,
    top_k: int = 5,
    norm_range: tuple[float, float] | None = None,
) -> RestartReport:
    """Optimise from the Mean Vector and ``n_restarts`` seeded random starts (seeds
    ``config.seed + 1 ...``) and compare the SAE features they end on."""
    starts = restart_starts(mean, config, n_restarts)
    vectors, _, final = optimise_rows(
        lm,
        layers=[layer_sae.layer] * len(starts),
        target=target,
        inits=starts,
        lrs=[step_size(config, mean)] * len(starts),
        steps=config.steps,
        dummy_prompt=config.dummy_prompt,
        norm_ranges=[norm_range] * len(starts) if config.norm_constraint and norm_range else None,
    )
    return compare_starts(layer_sae, vectors, final, top_k)


def compare_starts(
    layer_sae: LayerSAE, vectors: torch.Tensor, final: torch.Tensor, top_k: int
) -> RestartReport:
    """Compare the top-k SAE features of optimised starts ``vectors`` (starts, d_model), row 0
    the reference start; ``final`` (starts,) are their target activations."""
    tops = _top_sets(layer_sae, vectors, top_k)
    reference, others = tops[0], tops[1:]
    n = max(len(others), 1)
    return RestartReport(
        layer=layer_sae.layer,
        top_sets=tops,
        activations=final.tolist(),
        top1_agreement=sum(t[0] == reference[0] for t in others) / n,
        jaccard=sum(len(set(t) & set(reference)) / len(set(t) | set(reference)) for t in others)
        / n,
        agreement={f: sum(f in t for t in others) / n for f in reference},
    )


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
    """:func:`restart_report` at each of ``layers``, from the Mean Vectors of ``texts`` (norms
    clamped to the corpus range when ``config.norm_constraint``)."""
    base = compute_baseline(lm, texts, layers)
    return [
        restart_report(
            lm,
            saes.layer(layer),
            target=target,
            mean=base.means[layer],
            config=config,
            n_restarts=n_restarts,
            top_k=top_k,
            norm_range=base.norm_ranges[layer],
        )
        for layer in layers
    ]

"""Random restarts: does the same SAE feature come back when the gradient ascent starts
elsewhere? Starts are the Mean Vector (the reference, as in the map) and K random directions
scaled to its norm; all run together as rows of one batched optimisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .config import OptimConfig
from .model import LoadedModel
from .optimise import initial_vector, optimise_batch, step_size
from .sae_store import LayerSAE


@dataclass
class RestartReport:
    layer: int
    top_sets: list[list[int]]  # top-k features of each start's X; row 0 is the Mean Vector start
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


def restart_report(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    *,
    target_layer: int,
    neuron: int,
    mean: torch.Tensor,
    config: OptimConfig,
    n_restarts: int,
    top_k: int = 5,
    norm_range: tuple[float, float] | None = None,
) -> RestartReport:
    """Optimise from the Mean Vector and ``n_restarts`` seeded random starts (seeds
    ``config.seed + 1 ...``) and compare the SAE features they end on."""
    starts = [mean] + [
        initial_vector(mean, dataclasses.replace(config, init="random", seed=config.seed + i))
        for i in range(1, n_restarts + 1)
    ]
    vectors, _, final = optimise_batch(
        lm,
        layer=layer_sae.layer,
        target_layer=target_layer,
        neuron=neuron,
        inits=torch.stack(starts),
        lr=step_size(config, mean),
        steps=config.steps,
        dummy_prompt=config.dummy_prompt,
        norm_range=norm_range if config.norm_constraint else None,
    )
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

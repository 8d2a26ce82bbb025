"""Forward-pass tests on prompt sets: how a neuron (or SAE feature) fires on each set, the
threshold that separates two sets, and which neurons of a layer separate them best."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.config import Target
from circuitmap.errors import check_range
from circuitmap.files.prompt_sets import read_prompt_set
from circuitmap.model.forward import run_recorded
from circuitmap.model.load import load_model
from circuitmap.model.tokens import batches
from circuitmap.sae.features import sae_activations

if TYPE_CHECKING:
    from circuitmap.config import ModelConfig
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE


@torch.no_grad()
def neuron_maxima(
    lm: LoadedModel, prompts: list[str], layer: int, max_tokens: int = 64, batch_size: int = 8
) -> torch.Tensor:
    """(n_prompts, d_mlp): each neuron's largest MLP post-activation over a prompt's real tokens."""
    out = []
    for batch in batches(lm, prompts, max_tokens, batch_size):
        mlp = run_recorded(lm.model, batch.input_ids, batch.attention_mask, mlp=[layer]).mlp
        acts = mlp[layer].float().masked_fill(~batch.real[..., None], float("-inf"))
        out.append(acts.max(1).values.cpu())
    return torch.cat(out)


@torch.no_grad()
def feature_maxima(
    lm: LoadedModel,
    prompts: list[str],
    layer_sae: LayerSAE,
    features: list[int],
    max_tokens: int = 64,
    batch_size: int = 8,
) -> torch.Tensor:
    """(n_prompts, len(features)): each SAE feature's largest activation over real tokens."""
    out = []
    for batch in batches(lm, prompts, max_tokens, batch_size):
        acts = sae_activations(lm, layer_sae, batch)[..., features]  # (batch, seq, k)
        out.append(acts.masked_fill(~batch.real.cpu()[..., None], float("-inf")).max(1).values)
    return torch.cat(out)


@dataclass
class Separation:
    threshold: float  # fires above this on the first set, below on the second
    accuracy: float  # fraction of both sets on the right side


def separation(first: torch.Tensor, second: torch.Tensor) -> Separation:
    """The threshold between two activation samples that classifies most of them correctly
    (``first`` above, ``second`` at or below)."""
    values = torch.cat([first, second]).sort().values
    candidates = torch.cat([values[:1] - 1, (values[1:] + values[:-1]) / 2, values[-1:] + 1])
    best = max(
        (((first > t).sum() + (second <= t).sum()).item(), -abs(t.item()), t.item())
        for t in candidates
    )
    return Separation(threshold=best[2], accuracy=best[0] / (len(first) + len(second)))


@dataclass
class NeuronScore:
    neuron: int
    score: float  # (mean on positive - mean on negative) / pooled standard deviation
    positive_mean: float
    negative_mean: float


def find_neurons(
    lm: LoadedModel, layer: int, positive: list[str], negative: list[str], top: int = 10
) -> list[NeuronScore]:
    """The neurons of ``layer`` that fire most on ``positive`` prompts relative to ``negative``."""
    check_range("layer", layer, 0, lm.n_layers - 1)
    pos, neg = neuron_maxima(lm, positive, layer), neuron_maxima(lm, negative, layer)
    pooled = torch.cat([pos - pos.mean(0), neg - neg.mean(0)]).std(0) + 1e-6  # (d_mlp,)
    scores = (pos.mean(0) - neg.mean(0)) / pooled
    best = scores.topk(min(top, scores.numel())).indices
    return [
        NeuronScore(int(i), scores[i].item(), pos[:, i].mean().item(), neg[:, i].mean().item())
        for i in best
    ]


def top_neurons(
    model_config: ModelConfig, layer: int, top: int, positive: str, negative: str
) -> list[Target]:
    """The ``top`` neurons of ``layer`` that :func:`rank_neurons` ranks first, as targets."""
    *_, scores = rank_neurons(model_config, layer, positive, negative, top)
    return [Target(layer, s.neuron) for s in scores]


def rank_neurons(
    model_config: ModelConfig, layer: int, positive: str, negative: str, top: int = 10
) -> tuple[str, str, list[NeuronScore]]:
    """`circuitmap find`: load the model and rank ``layer``'s neurons on two prompt sets (names
    of shipped sets or files); returns the two sets' names and the ``top`` scores."""
    (pos_name, pos), (neg_name, neg) = read_prompt_set(positive), read_prompt_set(negative)
    return pos_name, neg_name, find_neurons(load_model(model_config), layer, pos, neg, top)

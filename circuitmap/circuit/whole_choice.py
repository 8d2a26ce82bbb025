"""Choosing the whole circuit (see :mod:`circuitmap.circuit.whole` for the objective and the
method): its sites, then its nodes, learned on the build prompts."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from circuitmap.circuit.attribution import attribution
from circuitmap.circuit.whole import WholeCircuit, active, masked_target, masks_of, nothing

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.config import MapConfig, Target
    from circuitmap.model.load import LoadedModel

MASK_STEPS = 24  # forward-and-backward passes that learn the circuit
MASK_LR = 0.1  # Adam's step on the nodes' logits
CANDIDATES = 256  # features per site that may join the circuit: the best by attribution


def _hard(logits: dict[int, torch.Tensor], budget: int) -> dict[int, torch.Tensor]:
    """Binary kept weights (n_candidates + 1,) per site: the ``budget`` candidate features of
    highest logit over all sites, and each error node whose logit is positive."""
    pooled = torch.cat([v[:-1] for v in logits.values()])
    top = pooled.topk(min(budget, len(pooled))).indices
    chosen = torch.zeros(len(pooled))
    chosen[top] = 1.0
    hard, offset = {}, 0
    for site, v in logits.items():
        n = len(v) - 1
        hard[site] = torch.cat([chosen[offset : offset + n], (v[-1:] > 0).float()])
        offset += n
    return hard


def site_options(config: MapConfig, target: Target) -> list[list[int]]:
    """The sets of layers where ``target``'s whole circuit may edit the residual stream:
    ``config.sites`` (those among its mapped layers), or every set of ``config.n_sites`` mapped
    layers evenly spaced back from the last one (one set per spacing)."""
    layers = config.upstream_layers(target)
    if config.sites is not None:
        return [sorted(set(config.sites) & set(layers))]
    count = min(config.n_sites, len(layers))
    widest = (len(layers) - 1) // max(count - 1, 1)
    return [
        sorted(layers[len(layers) - 1 - k * gap] for k in range(count))
        for gap in range(1, max(widest, 1) + 1)
    ]


@torch.no_grad()
def choose_sites(
    lm: LoadedModel,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    target: Target,
    options: list[list[int]],
    budget: int,
) -> list[int]:
    """The set of sites among ``options`` whose circuit of each site's best features by
    attribution (``budget`` shared equally, error nodes kept) comes closest to the clean target
    on the build prompts ``run`` (mean squared difference over prompts): one forward, a row per
    option (a layer outside an option is left as it is)."""
    if len(options) == 1:
        return options[0]
    union = sorted({site for option in options for site in option})
    decs = {site: decompositions[site] for site in union}
    best = {}
    for site, dec in decs.items():
        scores = attribution(dec, run)[0].mean(0)  # (d_sae,)
        best[site] = scores.argsort(descending=True).tolist()
    keep = []
    for option in options:
        share = budget // len(option)
        features = {site: best[site][:share] if site in option else None for site in union}
        keep.append((features, {site: True for site in union}))
    m = masked_target(lm, decs, run, target, masks_of(decs, keep))  # (options, n)
    return options[int(((m - run.target) ** 2).mean(1).argmin())]


def choose_whole(
    lm: LoadedModel,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    target: Target,
    sites: list[int],
    budget: int,
    steps: int = MASK_STEPS,
) -> WholeCircuit:
    """The circuit over ``sites`` with at most ``budget`` feature nodes, learned on the build
    prompts ``run`` (see the module docstring)."""
    start = time.perf_counter()
    decs = {site: decompositions[site] for site in sites}
    clean = run.target  # (n,)
    with torch.no_grad():
        empty = masked_target(lm, decs, run, target, masks_of(decs, [nothing(sites)]))[0]
    span = max(abs((clean - empty).mean().item()), 1e-6)
    candidates, logits = {}, {}
    for site, dec in decs.items():
        scores = attribution(dec, run)[0].mean(0)  # (d_sae,)
        fires = active(dec, run)
        order = scores.masked_fill(~fires, -math.inf).argsort(descending=True)
        count = min(CANDIDATES, int(fires.sum()))
        candidates[site] = order[:count]
        rank = torch.linspace(1.0, -1.0, count)  # the site's best first
        logits[site] = torch.cat([rank, torch.ones(1)]).requires_grad_(True)
    optimiser = torch.optim.Adam(list(logits.values()), lr=MASK_LR)
    best: tuple[float, dict[int, torch.Tensor], dict[int, torch.Tensor]] = (math.inf, {}, {})
    for _ in range(steps):
        now = {site: v.detach().clone() for site, v in logits.items()}
        hard = _hard(now, budget)
        with torch.enable_grad():
            masks = {}
            for site, dec in decs.items():
                soft = torch.sigmoid(logits[site])
                kept = hard[site] + soft - soft.detach()  # straight-through: hard forward
                full = torch.zeros(dec.directions.shape[0] + 1)
                index = torch.cat([candidates[site], torch.tensor([len(full) - 1])])
                masks[site] = full.index_put((index,), kept)[None]
            values = masked_target(lm, decs, run, target, masks)[0]  # (n,)
            loss = (((values - clean) / span) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
        if loss.item() < best[0]:
            best = (loss.item(), hard, now)
        optimiser.step()
    features, site_scores, errors = {}, {}, {}
    _, hard, chosen_logits = best
    for site in sites:
        chosen = hard[site][:-1].nonzero()[:, 0]
        order = chosen_logits[site][chosen].argsort(descending=True)
        features[site] = candidates[site][chosen[order]].tolist()
        site_scores[site] = chosen_logits[site][chosen[order]].tolist()
        errors[site] = bool(hard[site][-1])
    return WholeCircuit(sites, features, errors, site_scores, time.perf_counter() - start)

"""Choosing the whole circuit (see :mod:`circuitmap.circuit.whole` for the objective and the
method): its sites, then its nodes, learned on the build prompts."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from circuitmap.circuit.attribution import attribution
from circuitmap.circuit.whole import (
    POSITIONS,
    WholeCircuit,
    active,
    masked_target,
    masks_of,
    nothing,
    ratio,
)
from circuitmap.circuit.whole_learn import Objective, prune, straight_through

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.config import MapConfig, Target
    from circuitmap.model.load import LoadedModel

MASK_STEPS = 16  # straight-through steps that refine the pruned circuit
MASK_LR = 0.1  # Adam's step on the nodes' logits
PRUNE_STEPS = 24  # attribution-pruning steps from every active feature down to the budget


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
    steps: int | None = None,
) -> WholeCircuit:
    """The circuit over ``sites`` with at most ``budget`` feature nodes, learned on the build
    prompts ``run`` (see the module docstring): attribution pruning from every active feature
    (:func:`~circuitmap.circuit.whole_learn.prune`, ``PRUNE_STEPS`` steps), then ``steps``
    (default ``MASK_STEPS``) straight-through steps that may swap its nodes."""
    start = time.perf_counter()
    decs = {site: decompositions[site] for site in sites}
    with torch.no_grad():
        empty = masked_target(lm, decs, run, target, masks_of(decs, [nothing(sites)]))[0]
    span = max(abs((run.target - empty).mean().item()), 1e-6)
    candidates = {site: active(dec, run).nonzero()[:, 0] for site, dec in decs.items()}
    objective = Objective(
        lambda masks: masked_target(lm, decs, run, target, masks)[0],
        run.target,
        {site: dec.directions.shape[0] for site, dec in decs.items()},
        candidates,
        span,
    )
    kept, effect = prune(objective, budget, PRUNE_STEPS)
    top = max(max(float(v.max()) for v in effect.values()), 1e-12)
    logits = {  # kept nodes in [0.5, 1], the rest in [-1, -0.5], by their last estimate
        site: torch.where(kept[site] > 0, 0.5, -1.0) + 0.5 * effect[site] / top for site in sites
    }
    kept, logits = straight_through(
        objective, logits, budget, MASK_STEPS if steps is None else steps, MASK_LR
    )
    with torch.no_grad():
        m_c, m_m, m_0 = objective.values(kept).mean(), run.target.mean(), empty.mean()
    fit = ratio((m_c - m_0).item(), (m_m - m_0).item(), m_m.item())
    return _circuit(sites, candidates, kept, logits, time.perf_counter() - start, fit)


def _circuit(
    sites: list[int],
    candidates: dict[int, torch.Tensor],
    hard: dict[int, torch.Tensor],
    logits: dict[int, torch.Tensor],
    seconds: float,
    build_fit: float | None,
) -> WholeCircuit:
    """The circuit of the kept weights ``hard`` over ``candidates``, best logit first."""
    nodes: dict[int, dict[str, list[int]]] = {}
    scores: dict[int, dict[str, list[float]]] = {}
    errors: dict[int, dict[str, bool]] = {}
    for site in sites:
        nodes[site], scores[site], errors[site] = {}, {}, {}
        for c, position in enumerate(POSITIONS):
            chosen = hard[site][c, :-1].nonzero()[:, 0]
            order = logits[site][c, chosen].argsort(descending=True)
            nodes[site][position] = candidates[site][chosen[order]].tolist()
            scores[site][position] = logits[site][c, chosen[order]].tolist()
            errors[site][position] = bool(hard[site][c, -1])
    return WholeCircuit(sites, nodes, errors, scores, seconds, build_fit)

"""Learning a whole circuit's nodes on the build prompts (see :mod:`circuitmap.circuit.whole`):
kept weights over each site's candidate features at both position classes and its error node,
searched for the target's mean under the whole-circuit edit."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Weights = dict[int, torch.Tensor]  # site -> (2, n_candidates + 1): per position class, the
# candidates' kept weights, then the error node's


@dataclass
class Objective:
    """The build prompts' target under a circuit over ``candidates`` (site -> feature indices,
    (n_candidates,), of its ``widths[site]`` features): ``forward`` maps masks (site ->
    (1, 2, width + 1), see :data:`circuitmap.circuit.whole.Masks`) to the target at each
    prompt (n,), differentiably; ``clean`` (n,) is the clean target and ``span`` m(M) -
    m(empty), which scales it."""

    forward: Callable[[dict[int, torch.Tensor]], torch.Tensor]
    clean: torch.Tensor
    widths: dict[int, int]
    candidates: dict[int, torch.Tensor]
    span: float

    def values(self, weights: Weights) -> torch.Tensor:
        """The target at each prompt (n,) with ``weights`` kept (differentiable in them)."""
        masks = {}
        for site, width in self.widths.items():
            index = torch.cat([self.candidates[site], torch.tensor([width])])
            masks[site] = torch.zeros(2, width + 1).index_copy(1, index, weights[site])[None]
        return self.forward(masks)

    def loss(self, values: torch.Tensor) -> torch.Tensor:
        """((m(C) - m(M)) / span)^2 over the prompts' mean: (1 - F(C))^2 on these prompts."""
        return ((values - self.clean).mean() / self.span) ** 2


def hard(logits: Weights, budget: int) -> Weights:
    """Binary kept weights: the ``budget`` feature nodes of highest logit over all sites and
    position classes, and each error node whose logit is positive."""
    pooled = torch.cat([v[:, :-1].flatten() for v in logits.values()])
    top = pooled.topk(min(budget, len(pooled))).indices
    chosen = torch.zeros(len(pooled))
    chosen[top] = 1.0
    kept, offset = {}, 0
    for site, v in logits.items():
        n = v[:, :-1].numel()
        features = chosen[offset : offset + n].view(len(v), -1)
        kept[site] = torch.cat([features, (v[:, -1:] > 0).float()], 1)
        offset += n
    return kept


def straight_through(
    objective: Objective, logits: Weights, budget: int, steps: int, lr: float
) -> tuple[Weights, Weights]:
    """Adam on the nodes' logits, each step's forward the :func:`hard` circuit, its backward
    the sigmoid's (straight-through); the circuit of lowest loss seen and its logits."""
    logits = {site: v.clone().requires_grad_(True) for site, v in logits.items()}
    optimiser = torch.optim.Adam(list(logits.values()), lr=lr)
    best: tuple[float, Weights, Weights] = (math.inf, {}, {})
    for _ in range(steps):
        now = {site: v.detach().clone() for site, v in logits.items()}
        kept = hard(now, budget)
        with torch.enable_grad():
            weights = {}
            for site, v in logits.items():
                soft = torch.sigmoid(v)
                weights[site] = kept[site] + soft - soft.detach()
            loss = objective.loss(objective.values(weights))
            optimiser.zero_grad()
            loss.backward()
        if loss.item() < best[0]:
            best = (loss.item(), kept, now)
        optimiser.step()
    return best[1], best[2]


def prune(objective: Objective, budget: int, steps: int) -> tuple[Weights, Weights]:
    """Attribution pruning from the circuit of every candidate (error nodes kept): at each of
    ``steps`` steps the gradient of the build prompts' mean target with respect to each kept
    node's weight, taken at the current circuit, estimates what removing it changes (after
    Syed et al., *Attribution Patching Outperforms Automated Circuit Discovery*, 2023, and
    Marks et al.'s node attribution), and the feature nodes of smallest estimate go, the count
    shrinking geometrically to ``budget``. Returns the kept weights and each node's last
    estimate (the circuit's scores)."""
    kept = {site: torch.ones(2, len(c) + 1) for site, c in objective.candidates.items()}
    total = sum(v[:, :-1].numel() for v in kept.values())
    effect: Weights = {}
    for step in range(1, steps + 1):
        count = max(budget, round(total * (budget / total) ** (step / steps)))
        weights = {site: v.clone().requires_grad_(True) for site, v in kept.items()}
        with torch.enable_grad():
            mean = objective.values(weights).mean() / objective.span
            grads = torch.autograd.grad(mean, list(weights.values()))
        effect = {site: g.abs() for site, g in zip(weights, grads, strict=True)}
        scores = {site: torch.where(kept[site] > 0, effect[site], -1.0) for site in kept}
        kept = hard(scores, count)
        kept = {site: torch.cat([v[:, :-1], torch.ones(2, 1)], 1) for site, v in kept.items()}
    return kept, effect

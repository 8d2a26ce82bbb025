"""Choosing a layer's circuit features by what they do to the target.

One forward and one backward over a target's build prompts give, at every mapped layer l, the
gradient g_l = d(target)/d(resid_pre l) at every token (the target read at each prompt's last
token, where it peaks). A feature's attribution is its activation above the reference times the
gradient along its direction, summed over real tokens (Marks et al., *Sparse Feature Circuits*):

    attr_i = sum_t (f_i,t - r_i) * (u_i . g_l,t)

the first-order estimate of what removing it takes from the target; the error term's is
``sum_t (e_t - r_e) . g_l,t``. With ``ig_steps`` > 0 the features' gradient is averaged along
the path from the reference to the clean activations (integrated gradients; with one step, the
gradient at the path's midpoint, the default: one gradient pass a round). A layer keeps its
features by attribution until they carry ``share`` of the layer's positive attribution, at most
``max_features``, in rounds (:func:`choose`); resampling the build prompts (bootstrap) says how
stable that choice is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.forward import run_recorded
from circuitmap.model.hooks import (
    start_at,
)

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel


def path_gradient(
    lm: LoadedModel,
    dec: LayerDecomposition,
    run: PromptRun,
    target: Target,
    steps: int,
    kept: list[int] | None = None,
) -> torch.Tensor:
    """The gradient of the target with respect to resid_pre of ``dec``'s layer (n, seq,
    d_model), averaged over ``steps`` points (midpoint rule) of the straight path from the
    stream with every feature but ``kept`` at its reference value at every real token (the
    error term and ``kept`` at their clean values) to the clean stream: the integrated-gradients
    estimate that Marks et al. use where first-order attribution is poor."""
    removed = torch.ones(dec.directions.shape[0])  # (d_sae,)
    removed[kept or []] = 0.0
    total = torch.zeros_like(run.resid[dec.layer])  # (n, seq, d_model)
    for rows, part in run.chunks(rows=1):  # groups of similar length: few padding tokens
        clean = part.resid[dec.layer]  # (n_group, seq_group, d_model)
        n = len(clean)
        start = dec.remove(clean, part.real, removed.expand(n, -1), torch.zeros(n))
        for k in range(steps):
            alpha = (k + 0.5) / steps
            point = (alpha * clean + (1 - alpha) * start).detach().requires_grad_(True)
            with torch.enable_grad():
                run_recorded(
                    lm.model,
                    part.input_ids,
                    part.attention_mask,
                    mlp=[target.layer],
                    edits=[start_at(lm.model, dec.layer, point)],
                    last_only=True,
                ).target(target).sum().backward()
            total[rows, total.shape[1] - clean.shape[1] :] += point.grad.float().cpu()
    return total / steps


@torch.no_grad()
def attribution(
    dec: LayerDecomposition, run: PromptRun, grad: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per build prompt, each feature's attribution (n, d_sae) and the error term's (n,), in
    the target's units; ``grad`` (n, seq, d_model) replaces the clean gradient for the
    features (e.g. :func:`path_gradient`)."""
    f, e = dec.encode(run.resid[dec.layer])  # (n, seq, d_sae), (n, seq, d_model)
    clean_grad = run.grads[dec.layer]  # (n, seq, d_model)
    real = run.real[..., None].float()  # (n, seq, 1)
    along = (clean_grad if grad is None else grad) @ dec.directions.T  # (n, seq, d_sae)
    features = (dec.contributions(f) * along * real).sum(1)  # (n, d_sae)
    error = ((e - dec.error_ref) * clean_grad * real).sum((1, 2))  # (n,)
    return features, error


def keep_count(scores: torch.Tensor, share: float, cap: int) -> int:
    """How many of ``scores`` (d_sae,), ranked from the highest, carry ``share`` of the positive
    total (at most ``cap``; only positive scores count)."""
    positive = scores.clamp(min=0).sort(descending=True).values
    total = positive.sum()
    if total <= 0:
        return 0
    reached = (positive.cumsum(0) >= share * total).nonzero()
    count = int(reached[0]) + 1 if len(reached) else int((positive > 0).sum())
    return min(count, cap, int((positive > 0).sum()))


def select(scores: torch.Tensor, share: float, cap: int) -> list[int]:
    """The features kept by :func:`keep_count`, best first."""
    return scores.argsort(descending=True)[: keep_count(scores, share, cap)].tolist()


def bootstrap_agreement(
    per_prompt: torch.Tensor,
    kept: list[int],
    share: float,
    cap: int,
    resamples: int,
    seed: int = 0,
) -> list[float | None]:
    """For each kept feature, the fraction of bootstrap resamples of the prompts
    (``per_prompt``: (n, d_sae) attributions) whose selection keeps it too (None: no
    resample ran)."""
    if not kept or resamples < 1:
        return [None] * len(kept)  # not measured
    gen = torch.Generator().manual_seed(seed)
    n = per_prompt.shape[0]
    hits = torch.zeros(len(kept))
    index = torch.tensor(kept)
    for _ in range(resamples):
        rows = torch.randint(n, (n,), generator=gen)
        chosen = torch.zeros(per_prompt.shape[1], dtype=torch.bool)
        chosen[select(per_prompt[rows].mean(0), share, cap)] = True
        hits += chosen[index].float()
    return (hits / resamples).tolist()


@dataclass
class Choice:
    """One layer's features chosen by attribution."""

    ranked: list[int]  # the kept features in the order chosen, then the last round's next best
    kept: int  # ranked[:kept] is the circuit
    scores: list[float]  # each ranked feature's attribution, in the round that ranked it
    agreement: list[float | None]  # per kept feature: bootstrap agreement within its round
    error: float  # the error term's attribution (clean gradient), mean over prompts


def choose(
    lm: LoadedModel,
    dec: LayerDecomposition,
    run: PromptRun,
    target: Target,
    *,
    rounds: int,
    ig_steps: int,
    share: float,
    cap: int,
    resamples: int,
) -> Choice:
    """Keep up to ``cap`` features of ``dec``'s layer in ``rounds`` rounds of ``cap / rounds``:
    each round ranks the features not yet kept by attribution with the gradient along the path
    from the circuit kept so far alone (every other feature at its reference) to the clean
    stream, and keeps them until they carry ``share`` of the round's positive attribution. The
    first round is plain attribution; later rounds choose what adds most to the circuit already
    kept, which is what its sufficiency asks. A round that stops short of its quota ends the
    choice. With ``ig_steps`` 0 every round uses the clean gradient."""
    kept: list[int] = []
    scores: list[float] = []
    agreement: list[float | None] = []
    error = 0.0
    tail: list[int] = []
    tail_scores: list[float] = []
    for r in range(rounds):
        quota = cap * (r + 1) // rounds - len(kept)
        if quota < 1:  # more rounds than features
            continue
        grad = path_gradient(lm, dec, run, target, ig_steps, kept) if ig_steps else None
        per_prompt, error_per_prompt = attribution(dec, run, grad)  # (n, d_sae), (n,)
        error = error_per_prompt.mean().item()
        rest = torch.ones(per_prompt.shape[1], dtype=torch.bool)
        rest[kept] = False
        candidates = rest.nonzero()[:, 0]  # (m,) features not kept yet
        round_scores = per_prompt[:, candidates]  # (n, m)
        mean = round_scores.mean(0)
        order = mean.argsort(descending=True)[: cap - len(kept)]  # (<= m,) into candidates
        take = keep_count(mean, share, quota)
        agreement += bootstrap_agreement(
            round_scores, order[:take].tolist(), share, quota, resamples
        )
        kept += candidates[order[:take]].tolist()
        scores += mean[order[:take]].tolist()
        tail = candidates[order[take:]].tolist()
        tail_scores = mean[order[take:]].tolist()
        if take < quota:
            break
    room = cap - len(kept)
    return Choice(
        ranked=kept + tail[:room],
        kept=len(kept),
        scores=scores + tail_scores[:room],
        agreement=agreement,
        error=error,
    )

"""Step 2 of the method: gradient ascent on an injected residual vector X.

X replaces resid_pre of the upstream layer at the last position of a dummy prompt; the loss is
minus the target neuron's MLP post-activation at that position. The model is frozen and every
forward stops at the target layer's MLP, so later layers are never run.

Two spaces (:class:`~circuitmap.config.OptimConfig`):

- ``"resid"`` (the report): Adam on X itself, as the report did, optionally clamping ||X|| to
  the corpus range after every step.
- ``"sae"``: Adam on a code z (d_sae,) of the layer's SAE, with X = decode(z) + e, e = m -
  decode(encode(m)) the Mean Vector m's SAE error, so X is the Mean Vector's error plus a
  non-negative combination of the SAE's features (z is clamped to >= 0 after every step). The
  loss is -min(a, level x corpus max) / (level x corpus max) plus an L1 pull
  ``sparsity`` x ||z - encode(m)||_1 / (m's largest feature activation), switched on after a
  quarter of the steps and raised linearly to full strength by five eighths, so X first reaches
  the bounded level and then keeps only the features it needs (a continuation of the sparsity
  penalty; cf. the L1 penalty of sparse dictionary learning, Olshausen & Field 1996). ||X|| is
  rescaled into the corpus range inside the forward (X = s (decode(z) + e), s = 1 unless ||X||
  leaves that range). X's SAE features are reported as z: the code the optimisation chose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.method.x_space import CodeRows, LayerSpace, ResidRows
from circuitmap.model.forward import prefix_cache, repeat_cache, run_recorded
from circuitmap.model.hooks import inject_rows

if TYPE_CHECKING:
    from sae_lens import SAE
    from transformers import Cache

    from circuitmap.config import OptimConfig, Target
    from circuitmap.model.load import LoadedModel


SETTLE = 12  # halvings that bring an X above the bounded level back to it


@dataclass
class OptimResult:
    vector: torch.Tensor  # (d_model,) the optimised X
    trajectory: list[float]  # target activation before each Adam step
    final_activation: float  # target activation with the final X
    step_size: float  # Adam lr actually used (after lr_units scaling)
    code: torch.Tensor | None = None  # (d_sae,) X's SAE code, space "sae"


@dataclass
class Ascent:
    """A batch of optimised rows."""

    vectors: torch.Tensor  # (rows, d_model) X
    codes: torch.Tensor | None  # (rows, d_sae) X's SAE codes (space "sae"), else None
    trajectories: torch.Tensor  # (steps, rows) target activation before each step
    final: torch.Tensor  # (rows,) target activation with the final X
    step_sizes: list[float]  # Adam's lr of each row (space "sae": of each group of rows)


def target_activation(
    lm: LoadedModel,
    input_ids: torch.Tensor,
    *,
    layers: list[int],
    vectors: torch.Tensor,
    target: Target,
    prefix: Cache | None = None,
) -> torch.Tensor:
    """(rows,) target activation at the last position with ``vectors[r]`` (rows, d_model)
    injected there at resid_pre of ``layers[r]``; differentiable with respect to ``vectors``.
    With ``prefix`` (the one-row cache of the tokens before ``input_ids``, see
    :func:`~circuitmap.model.forward.prefix_cache`), ``input_ids`` continue those tokens."""
    edits = [inject_rows(lm.model, layers, -1, vectors)]
    cache = None if prefix is None else repeat_cache(prefix, len(input_ids))
    out = run_recorded(
        lm.model, input_ids, mlp=[target.layer], edits=edits, last_only=True, cache=cache
    )
    return out.mlp[target.layer][:, -1, target.neuron]


def dummy_tokens(lm: LoadedModel, prompt: str, layer: int) -> tuple[torch.Tensor, Cache | None]:
    """The dummy ``prompt``'s last token (1, 1) and the one-row cache of the tokens before it up
    to ``layer`` (None for a one-token prompt): X changes no earlier token (attention is
    causal), so those run once and each forward runs the last token against them."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    prefix = prefix_cache(lm.model, ids[:, :-1], layer) if ids.shape[1] > 1 else None
    return ids[:, -1:], prefix


@torch.no_grad()
def injected_activation(
    lm: LoadedModel, target: Target, layers: list[int], vectors: torch.Tensor, prompt: str
) -> torch.Tensor:
    """(rows,) the target's activation at the last token of ``prompt`` (the dummy prompt) with
    ``vectors[r]`` (rows, d_model) injected there as it is (no norm bound) at resid_pre of
    ``layers[r]``: the Mean Vector's activation, for example."""
    ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    ids = ids.expand(len(layers), -1)  # (rows, seq)
    return target_activation(lm, ids, layers=layers, vectors=vectors, target=target).cpu()


def initial_vector(mean: torch.Tensor, config: OptimConfig) -> torch.Tensor:
    """X's starting point: the Mean Vector, or a seeded random direction of the same norm."""
    if config.init == "mean":
        return mean.clone()
    gen = torch.Generator().manual_seed(config.seed)  # "random"
    direction = torch.randn(mean.shape, generator=gen)
    return direction * (mean.norm() / direction.norm())


def step_size(config: OptimConfig, mean: torch.Tensor, code_scale: float | None = None) -> float:
    """Adam's lr: raw, or (``"rms"``) in units of the Mean Vector's RMS coordinate, or in
    space ``"sae"`` of ``code_scale`` (the Mean Vector's largest feature activation)."""
    if config.lr_units == "raw":
        return config.lr
    if config.space == "sae" and code_scale is not None:
        return config.lr * code_scale
    return config.lr * (mean.norm() / mean.numel() ** 0.5).item()  # "rms"


def _keep_best(
    rows: CodeRows | ResidRows, acts: torch.Tensor, cap: float, best: torch.Tensor
) -> torch.Tensor:
    """Remember each row's latest X among those of highest min(activation, ``cap``) so far
    (``acts``, ``best``: (rows,)); returns the new best. A step that overshoots into a region
    where the neuron is dead so never loses what an earlier step reached."""
    score = acts.clamp(max=cap)
    rows.keep(score >= best)
    return torch.maximum(best, score)


def _settle(
    rows: CodeRows | ResidRows, activation: Callable[[torch.Tensor], torch.Tensor], cap: float
) -> None:
    """Bring each row above ``cap`` back along its path from its start until the target is at
    most ``cap`` (bisection on the fraction of the way, ``SETTLE`` halvings, rows batched)."""
    with torch.no_grad():
        over = activation(rows.vectors()) > cap  # (rows,)
        if not over.any():
            return
        low, high = torch.zeros(len(over)), torch.ones(len(over))
        for _ in range(SETTLE):
            mid = torch.where(over, (low + high) / 2, high)
            above = activation(rows.vectors(mid)) > cap
            high = torch.where(over & above, mid, high)
            low = torch.where(over & ~above, mid, low)
        rows.settle(torch.where(over, low, high))


def _pull(step: int, steps: int) -> float:
    """The L1 pull's strength at ``step``: 0 for the first quarter, then up to 1 by 5/8."""
    return min(1.0, max(0.0, (step - steps / 4) / (3 * steps / 8)))


def optimise_rows(
    lm: LoadedModel,
    *,
    target: Target,
    spaces: list[LayerSpace],
    inits: torch.Tensor,
    config: OptimConfig,
    corpus_max: float | None = None,
) -> Ascent:
    """Adam on a batch of independent starts ``inits`` (rows, d_model), one dummy-prompt row
    each; row r injects at resid_pre of ``spaces[r].layer`` in ``config.space`` (see the
    module docstring). Rows do not interact in the forward and each has its own Adam lr, so
    each follows the path it would follow alone: one batch optimises all upstream layers (and
    restarts) of a target at once. ``corpus_max``: the target's largest corpus activation, for
    ``config.level`` (None or <= 0: no bound)."""
    last, prefix = dummy_tokens(lm, config.dummy_prompt, target.layer)
    last = last.expand(len(spaces), -1)  # (rows, 1)
    layers = [s.layer for s in spaces]
    missing = sorted({s.layer for s in spaces if s.sae is None})
    if config.space == "sae" and missing:
        raise CircuitmapError(
            f"X is optimised in SAE space but layer {missing[0]} has no SAE: give one, or "
            "use --space resid"
        )
    rows = CodeRows(spaces, inits) if config.space == "sae" else ResidRows(spaces, inits)
    if isinstance(rows, CodeRows):
        scales = rows.scales
        lrs = [step_size(config, s.mean, k) for (s, _), k in zip(rows.groups, scales, strict=True)]
    else:
        lrs = [step_size(config, s.mean) for s in spaces]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(rows.params, lrs, strict=True)]
    optimiser = torch.optim.Adam(groups)
    cap = None  # the bounded level, in the target's units
    if config.level is not None and corpus_max is not None and corpus_max > 0:
        cap = config.level * corpus_max

    def activation(xs: torch.Tensor) -> torch.Tensor:  # (rows, d_model) -> (rows,)
        return target_activation(lm, last, layers=layers, vectors=xs, target=target, prefix=prefix)

    trajectory = []
    best = torch.full((len(spaces),), -torch.inf)
    for step in range(config.steps):
        optimiser.zero_grad()
        acts = activation(rows.vectors())
        if cap is not None:
            best = _keep_best(rows, acts.detach().cpu(), cap, best)
        loss = -(acts.sum() if cap is None else (acts.clamp(max=cap) / cap).sum())
        if isinstance(rows, CodeRows) and config.sparsity and _pull(step, config.steps):
            loss = loss + config.sparsity * _pull(step, config.steps) * rows.penalty()
        loss.backward()
        optimiser.step()
        trajectory.append(acts.detach().cpu())
        rows.project()
    if cap is not None:  # bounded: the best X seen, brought back to the level
        with torch.no_grad():
            _keep_best(rows, activation(rows.vectors()).cpu(), cap, best)
        rows.restore()
        _settle(rows, activation, cap)
    with torch.no_grad():
        xs = rows.vectors()
        final = activation(xs).cpu()
    return Ascent(
        vectors=xs.detach(),
        codes=rows.codes() if isinstance(rows, CodeRows) else None,
        trajectories=torch.stack(trajectory),
        final=final,
        step_sizes=lrs,
    )


def optimise_vector(
    lm: LoadedModel,
    *,
    layer: int,
    target: Target,
    mean: torch.Tensor,
    config: OptimConfig,
    norm_range: tuple[float, float] | None = None,
    sae: SAE | None = None,
    corpus_max: float | None = None,
) -> OptimResult:
    """Maximise the target neuron by Adam from ``config.init`` (space ``"sae"`` needs ``sae``,
    the layer's SAE); ``norm_range`` bounds ||X|| when ``config.norm_constraint``."""
    space = LayerSpace(layer, mean, norm_range if config.norm_constraint else None, sae)
    ascent = optimise_rows(
        lm,
        target=target,
        spaces=[space],
        inits=initial_vector(mean, config)[None],
        config=config,
        corpus_max=corpus_max,
    )
    return OptimResult(
        vector=ascent.vectors[0],
        trajectory=ascent.trajectories[:, 0].tolist(),
        final_activation=ascent.final[0].item(),
        step_size=ascent.step_sizes[0],
        code=None if ascent.codes is None else ascent.codes[0],
    )

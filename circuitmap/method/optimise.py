"""Step 2 of the method: gradient ascent on an injected residual vector X.

X replaces resid_pre of the upstream layer at the last position of a dummy prompt; the loss is
minus the target neuron's MLP post-activation at that position. The model is frozen and every
forward stops at the target layer's MLP, so later layers are never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.forward import prefix_cache, repeat_cache, run_recorded
from circuitmap.model.hooks import inject_rows

if TYPE_CHECKING:
    from transformers import Cache

    from circuitmap.config import OptimConfig, Target
    from circuitmap.model.load import LoadedModel


@dataclass
class OptimResult:
    vector: torch.Tensor  # (d_model,) the optimised X
    trajectory: list[float]  # target activation before each Adam step
    final_activation: float  # target activation with the final X
    step_size: float  # Adam lr actually used (after lr_units scaling)


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


def initial_vector(mean: torch.Tensor, config: OptimConfig) -> torch.Tensor:
    """X's starting point: the Mean Vector, or a seeded random direction of the same norm."""
    if config.init == "mean":
        return mean.clone()
    gen = torch.Generator().manual_seed(config.seed)  # "random"
    direction = torch.randn(mean.shape, generator=gen)
    return direction * (mean.norm() / direction.norm())


def step_size(config: OptimConfig, mean: torch.Tensor) -> float:
    """Adam's lr: raw, or in units of the Mean Vector's RMS coordinate."""
    if config.lr_units == "raw":
        return config.lr
    return config.lr * (mean.norm() / mean.numel() ** 0.5).item()  # "rms"


def optimise_rows(
    lm: LoadedModel,
    *,
    layers: list[int],
    target: Target,
    inits: torch.Tensor,
    lrs: list[float],
    steps: int,
    dummy_prompt: str,
    norm_ranges: list[tuple[float, float]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on a batch of independent starts ``inits`` (rows, d_model), one dummy-prompt row
    each; row r injects at resid_pre of ``layers[r]`` with Adam lr ``lrs[r]``. Every row is its own
    parameter, and rows do not interact in the forward, so each follows the path it would follow
    alone: one batch optimises all upstream layers (and restarts) of a target at once.
    ``norm_ranges[r]`` clamps ||X_r|| after every step.

    Returns (vectors (rows, d_model), trajectories (steps, rows), final activations (rows,)).
    """
    ids = lm.tokenizer(dummy_prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    # X changes no earlier token (attention is causal): those run once, and each step runs the
    # last token of every row against their cached keys and values.
    prefix = prefix_cache(lm.model, ids[:, :-1], target.layer) if ids.shape[1] > 1 else None
    last = ids[:, -1:].expand(len(layers), -1)  # (rows, 1)
    xs = [torch.nn.Parameter(row.float().clone()) for row in inits]  # rows x (d_model,)
    optimiser = torch.optim.Adam([{"params": [x], "lr": lr} for x, lr in zip(xs, lrs, strict=True)])
    trajectory = []

    def activation() -> torch.Tensor:  # (rows,)
        return target_activation(
            lm, last, layers=layers, vectors=torch.stack(xs), target=target, prefix=prefix
        )

    for _ in range(steps):
        optimiser.zero_grad()
        acts = activation()
        (-acts.sum()).backward()
        optimiser.step()
        trajectory.append(acts.detach().cpu())
        if norm_ranges is not None:
            with torch.no_grad():
                for x, (low, high) in zip(xs, norm_ranges, strict=True):
                    norm = x.norm()
                    x.mul_(norm.clamp(low, high) / norm)
    with torch.no_grad():
        final = activation().cpu()
    return torch.stack(xs).detach(), torch.stack(trajectory), final


def optimise_vector(
    lm: LoadedModel,
    *,
    layer: int,
    target: Target,
    mean: torch.Tensor,
    config: OptimConfig,
    norm_range: tuple[float, float] | None = None,
) -> OptimResult:
    """Maximise the target neuron by Adam on X from ``config.init``; ``norm_range`` (used when
    ``config.norm_constraint``) clamps ||X|| after every step."""
    lr = step_size(config, mean)
    vectors, trajectory, final = optimise_rows(
        lm,
        layers=[layer],
        target=target,
        inits=initial_vector(mean, config)[None],
        lrs=[lr],
        steps=config.steps,
        dummy_prompt=config.dummy_prompt,
        norm_ranges=[norm_range] if config.norm_constraint and norm_range else None,
    )
    return OptimResult(
        vector=vectors[0],
        trajectory=trajectory[:, 0].tolist(),
        final_activation=final[0].item(),
        step_size=lr,
    )

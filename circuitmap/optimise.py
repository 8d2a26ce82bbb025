"""Step 2 of the method: gradient ascent on an injected residual vector X.

X replaces resid_pre of the upstream layer at the last position of a dummy prompt; the loss is
minus the target neuron's MLP post-activation at that position. The model is frozen and every
forward stops at the target layer's MLP, so later layers are never run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import OptimConfig
from .errors import CircuitmapError
from .hooks import inject_resid_pre, record_mlp_post, run_body
from .model import LoadedModel


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
    layer: int,
    position: int,
    vectors: torch.Tensor,
    target_layer: int,
    neuron: int,
) -> torch.Tensor:
    """(batch,) target activation at ``position`` with ``vectors`` (batch, d_model) injected at
    resid_pre of ``layer``; differentiable with respect to ``vectors``."""
    with (
        inject_resid_pre(lm.model, layer, position, vectors),
        record_mlp_post(lm.model, target_layer, stop=True) as mlp,
    ):
        run_body(lm.model, input_ids)
    return mlp[target_layer][:, position, neuron]


def initial_vector(mean: torch.Tensor, config: OptimConfig) -> torch.Tensor:
    """X's starting point: the Mean Vector, or a seeded random direction of the same norm."""
    if config.init == "mean":
        return mean.clone()
    if config.init == "random":
        gen = torch.Generator().manual_seed(config.seed)
        direction = torch.randn(mean.shape, generator=gen)
        return direction * (mean.norm() / direction.norm())
    raise CircuitmapError(f"init {config.init!r} is not supported: use mean or random")


def step_size(config: OptimConfig, mean: torch.Tensor) -> float:
    """Adam's lr: raw, or in units of the Mean Vector's RMS coordinate."""
    if config.lr_units == "raw":
        return config.lr
    if config.lr_units == "rms":
        return config.lr * (mean.norm() / mean.numel() ** 0.5).item()
    raise CircuitmapError(f"lr units {config.lr_units!r} are not supported: use rms or raw")


def optimise_vector(
    lm: LoadedModel,
    *,
    layer: int,
    target_layer: int,
    neuron: int,
    mean: torch.Tensor,
    config: OptimConfig,
    norm_range: tuple[float, float] | None = None,
) -> OptimResult:
    """Maximise the target neuron by Adam on X; ``norm_range`` (used when
    ``config.norm_constraint``) clamps ||X|| after every step."""
    ids = lm.tokenizer(config.dummy_prompt, return_tensors="pt")["input_ids"].to(lm.input_device)
    x = torch.nn.Parameter(initial_vector(mean, config).float())  # (d_model,)
    lr = step_size(config, mean)
    optimiser = torch.optim.Adam([x], lr=lr)
    trajectory = []

    def activation() -> torch.Tensor:
        return target_activation(
            lm,
            ids,
            layer=layer,
            position=-1,
            vectors=x[None],
            target_layer=target_layer,
            neuron=neuron,
        )[0]

    for _ in range(config.steps):
        optimiser.zero_grad()
        act = activation()
        (-act).backward()
        optimiser.step()
        trajectory.append(act.item())
        if config.norm_constraint and norm_range is not None:
            with torch.no_grad():
                norm = x.norm()
                x.mul_(norm.clamp(*norm_range) / norm)
    with torch.no_grad():
        final = activation().item()
    return OptimResult(
        vector=x.detach().clone(), trajectory=trajectory, final_activation=final, step_size=lr
    )

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


def optimise_batch(
    lm: LoadedModel,
    *,
    layer: int,
    target_layer: int,
    neuron: int,
    inits: torch.Tensor,
    lr: float,
    steps: int,
    dummy_prompt: str,
    norm_range: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on a batch of independent starts ``inits`` (batch, d_model), one dummy-prompt row
    each. Adam's update is per coordinate and the rows do not interact, so each row follows the
    path it would follow alone. ``norm_range`` clamps each ||X|| after every step.

    Returns (vectors (batch, d_model), trajectories (steps, batch), final activations (batch,)).
    """
    ids = lm.tokenizer(dummy_prompt, return_tensors="pt")["input_ids"]
    ids = ids.expand(inits.shape[0], -1).to(lm.input_device)  # (batch, seq)
    x = torch.nn.Parameter(inits.float().clone())  # (batch, d_model)
    optimiser = torch.optim.Adam([x], lr=lr)
    trajectory = []

    def activation() -> torch.Tensor:  # (batch,)
        return target_activation(
            lm, ids, layer=layer, position=-1, vectors=x, target_layer=target_layer, neuron=neuron
        )

    for _ in range(steps):
        optimiser.zero_grad()
        acts = activation()
        (-acts.sum()).backward()
        optimiser.step()
        trajectory.append(acts.detach().cpu())
        if norm_range is not None:
            with torch.no_grad():
                norms = x.norm(dim=-1, keepdim=True)  # (batch, 1)
                x.mul_(norms.clamp(*norm_range) / norms)
    with torch.no_grad():
        final = activation().cpu()
    return x.detach().clone(), torch.stack(trajectory), final


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
    """Maximise the target neuron by Adam on X from ``config.init``; ``norm_range`` (used when
    ``config.norm_constraint``) clamps ||X|| after every step."""
    lr = step_size(config, mean)
    vectors, trajectory, final = optimise_batch(
        lm,
        layer=layer,
        target_layer=target_layer,
        neuron=neuron,
        inits=initial_vector(mean, config)[None],
        lr=lr,
        steps=config.steps,
        dummy_prompt=config.dummy_prompt,
        norm_range=norm_range if config.norm_constraint else None,
    )
    return OptimResult(
        vector=vectors[0],
        trajectory=trajectory[:, 0].tolist(),
        final_activation=final[0].item(),
        step_size=lr,
    )

"""Direct interventions during generation: add a feature's decoder direction at resid_pre of its
layer (every position, prefill and decoding), or clamp the target neuron's post-activation.
Each strength is one row of a single batched greedy decode; strength 0 is the clean text."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.method.ablation import feature_directions
from circuitmap.method.baseline import compute_baseline
from circuitmap.model.generate import greedy_decode, prompt_rows
from circuitmap.model.hooks import edit_mlp_post, edit_resid_pre

if TYPE_CHECKING:
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE


def clamp_neuron(
    lm: LoadedModel, target: Target, values: torch.Tensor
) -> AbstractContextManager[None]:
    """Set the target neuron's MLP post-activation to ``values`` (batch,) at every position; NaN
    rows are left as they are (the clean run)."""
    neuron = target.neuron

    def clamp(post: torch.Tensor) -> torch.Tensor:  # (batch, seq, d_mlp)
        post = post.clone()
        vals = values.to(post.device, post.dtype)[:, None].expand(-1, post.shape[1])  # (batch, seq)
        post[..., neuron] = torch.where(torch.isnan(vals), post[..., neuron], vals)
        return post

    return edit_mlp_post(lm.model, target.layer, clamp)


def _argmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


def steer_feature(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    feature: int,
    prompt: str,
    strengths: list[float],
    max_new_tokens: int = 20,
) -> list[str]:
    """Text generated with ``strength * u_feature`` added to resid_pre of the SAE's layer at every
    position, one row per strength (u: the residual direction of one unit of the feature)."""
    direction = feature_directions(layer_sae.sae, [feature])[0]  # (d_model,)
    added = torch.tensor(strengths, dtype=torch.float32)[:, None] * direction  # (rows, d_model)

    def add(hidden: torch.Tensor) -> torch.Tensor:  # (rows, seq, d_model)
        return hidden + added.to(hidden.device, hidden.dtype)[:, None, :]

    with edit_resid_pre(lm.model, layer_sae.layer, add):
        return greedy_decode(lm, prompt_rows(lm, prompt, len(strengths)), _argmax, max_new_tokens)


def steer_neuron(
    lm: LoadedModel,
    target: Target,
    prompt: str,
    values: list[float | None],
    max_new_tokens: int = 20,
) -> list[str]:
    """Text generated with the neuron clamped to each of ``values`` (None: clean), one row each."""
    clamp = torch.tensor([float("nan") if v is None else v for v in values])
    with clamp_neuron(lm, target, clamp):
        return greedy_decode(lm, prompt_rows(lm, prompt, len(values)), _argmax, max_new_tokens)


def steer_feature_scaled(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    feature: int,
    prompt: str,
    strengths: list[float],
    resid_norm: float,
    max_new_tokens: int = 20,
) -> list[str]:
    """:func:`steer_feature` with strengths in units of the layer's typical residual norm: a
    strength of 1 adds a vector along the feature's direction as long as a typical resid_pre."""
    unit = feature_directions(layer_sae.sae, [feature])[0].norm().item()
    return steer_feature(
        lm, layer_sae, feature, prompt, [s * resid_norm / unit for s in strengths], max_new_tokens
    )


def feature_steering(
    lm: LoadedModel,
    layer_sae: LayerSAE,
    feature: int,
    prompt: str,
    strengths: list[float],
    texts: list[str],
    max_new_tokens: int = 20,
) -> list[tuple[str, str]]:
    """(label, text) per strength of :func:`steer_feature_scaled`, the typical residual norm
    measured on the last tokens of ``texts``."""
    layer = layer_sae.layer
    norm = compute_baseline(lm, texts, [layer]).vectors[layer].norm(dim=-1).mean().item()
    out = steer_feature_scaled(lm, layer_sae, feature, prompt, strengths, norm, max_new_tokens)
    return [
        (f"L{layer} feature {feature} x {v:g}", text)
        for v, text in zip(strengths, out, strict=True)
    ]


def neuron_clamping(
    lm: LoadedModel,
    target: Target,
    prompt: str,
    multiples: list[float],
    texts: list[str],
    max_new_tokens: int = 20,
) -> list[tuple[str, str]]:
    """(label, text) for the clean run and the neuron clamped to each multiple of its largest
    activation on ``texts``; a neuron whose largest activation is not above 0 is a one-line
    error."""
    top = compute_baseline(lm, texts, [0], target=target).target_max
    if top is None or top <= 0:
        raise CircuitmapError(
            f"neuron {target.id} does not fire on the corpus (its largest activation is "
            f"{top + 0.0:.4g}): its clamps are multiples of that, so choose a neuron that fires"
        )
    out = steer_neuron(lm, target, prompt, [None] + [m * top for m in multiples], max_new_tokens)
    labels = ["clean"] + [f"neuron = {m:g} x corpus max ({m * top:.2f})" for m in multiples]
    return list(zip(labels, out, strict=True))

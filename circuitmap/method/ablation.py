"""Feature ablation: remove SAE features from a residual vector and measure what changes.

An ablation keeps the SAE's error term: with the SAE's decode affine in the feature activations
f, the contribution of feature i is ``(f_i - r_i) * u_i`` with ``u_i = decode(e_i) - decode(0)``,
and ablating features S is ``x - sum_{i in S} (f_i - r_i) u_i``; ``r_i`` is 0 (zero ablation)
or the feature's mean activation on the corpus (mean ablation). Only those features change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from sae_lens import SAE

from circuitmap.model.forward import run_recorded
from circuitmap.model.hooks import (
    edit_resid_pre,
    start_at,
)

if TYPE_CHECKING:
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel


@torch.no_grad()
def feature_directions(sae: SAE, indices: list[int]) -> torch.Tensor:
    """(len(indices), d_model): the residual-space direction one unit of each feature adds."""
    eye = torch.zeros(len(indices), sae.cfg.d_sae, device=sae.W_dec.device)
    eye[torch.arange(len(indices)), torch.tensor(indices, dtype=torch.long)] = 1.0
    return (sae.decode(eye) - sae.decode(torch.zeros_like(eye[:1]))).cpu()


@dataclass
class AblationReadout:
    """What one batched forward measured: per row, the target and later resid_pre vectors."""

    target: torch.Tensor  # (rows,) target activation at each row's read position
    resid: dict[int, torch.Tensor]  # later layer -> (rows, seq, d_model) resid_pre


@torch.no_grad()
def ablation_forward(
    lm: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    layer: int,
    edit: Callable[[torch.Tensor], torch.Tensor],
    target: Target,
    read_layers: list[int],
    start: torch.Tensor | None = None,
) -> AblationReadout:
    """One forward of ``input_ids`` (rows, seq) with resid_pre of ``layer`` edited by ``edit``;
    reads the target neuron at the last position (its MLP runs there only) and resid_pre of
    ``read_layers``, and stops at the target layer's MLP. ``start`` (rows, seq, d_model), the
    clean resid_pre of ``layer`` when it is known, skips the layers before it."""
    edits = [] if start is None else [start_at(lm.model, layer, start)]
    edits.append(edit_resid_pre(lm.model, layer, edit))
    out = run_recorded(
        lm.model,
        input_ids,
        attention_mask,
        resid=read_layers,
        mlp=[target.layer],
        edits=edits,
        last_only=True,
    )
    return AblationReadout(
        target=out.target(target).cpu(),
        resid={m: h.float().cpu() for m, h in out.resid.items()},
    )


def matched_controls(
    activity: torch.Tensor, nodes: list[int], pool: list[int], count: int
) -> list[list[int]]:
    """For each node feature, the indices into ``pool`` of the ``count`` controls whose
    activity (d_sae,) is closest to its own on a log scale."""
    log_act = activity.clamp(min=1e-12).log()
    if not pool:
        return [[] for _ in nodes]
    pooled = log_act[torch.tensor(pool)]  # (len(pool),)
    return [(pooled - log_act[node]).abs().argsort()[:count].tolist() for node in nodes]


def spread_levels(activity: torch.Tensor, features: list[int], count: int) -> list[int]:
    """``count`` of ``features`` evenly spread over their activity (d_sae,) levels, lowest to
    highest: the levels a pool of controls should match."""
    if not features or count < 1:
        return []
    ordered = sorted(features, key=lambda f: activity[f].item())
    picks = torch.linspace(0, len(ordered) - 1, min(count, len(ordered))).round().long()
    return list(dict.fromkeys(ordered[i] for i in picks.tolist()))


def control_features(
    activity: torch.Tensor, top: list[int], per_feature: int, exclude: Sequence[int] = ()
) -> list[list[int]]:
    """For each top feature, ``per_feature`` other features whose activity (d_sae,) is closest
    to its own on a log scale, each used once, none of ``exclude``; only features that fire
    (activity > 0) qualify."""
    used = set(top) | set(exclude)
    log_act = activity.clamp(min=1e-12).log()
    controls = []
    for feature in top:
        distance = (log_act - log_act[feature]).abs()
        distance[activity <= 0] = float("inf")
        chosen: list[int] = []
        for candidate in distance.argsort().tolist():
            if len(chosen) == per_feature or distance[candidate] == float("inf"):
                break
            if candidate not in used:
                chosen.append(candidate)
                used.add(candidate)
        controls.append(chosen)
    return controls


def sign_flip_p(differences: torch.Tensor, samples: int = 20_000, seed: int = 0) -> float:
    """One-sided p-value that the mean of paired ``differences`` (n,) is above 0: the fraction
    of sign flips whose mean is at least the observed one (exact over all 2^n flips up to
    n = 16, else ``samples`` random flips). The smallest p-value is 1/2^n."""
    n = len(differences)
    if n <= 16:
        codes = torch.arange(2**n)[:, None]
        signs = 1.0 - 2.0 * ((codes >> torch.arange(n)) & 1).float()  # (2^n, n)
    else:
        gen = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (samples, n), generator=gen).float() * 2 - 1
        signs[0] = 1.0
    flipped = (signs * differences).mean(-1)  # (flips,)
    return (flipped >= differences.mean() - 1e-12).float().mean().item()


def necessity(
    effects: torch.Tensor, control_effects: torch.Tensor, n_boot: int = 1000, seed: int = 0
) -> dict[str, float | None]:
    """Is a node's effect on the target (n_prompts,) larger than that of control features of
    similar activation level on the same prompts (n_controls, n_prompts)?

    Returns the controls' mean effect; a p-value from a paired sign-flip test of the node's
    per-prompt effect minus the controls' mean effect on that prompt (can reach 1/2^n_prompts,
    whatever the number of controls); the effect size in control standard deviations (None
    unless two controls differ); and a bootstrap 95% interval of the node's mean effect over
    prompts. With no control, only the interval is measured (the rest None)."""
    effect = effects.mean()
    control = control_effects.mean(-1)  # (n_controls,)
    gen = torch.Generator().manual_seed(seed)
    resampled = effects[torch.randint(len(effects), (n_boot, len(effects)), generator=gen)].mean(-1)
    low, high = torch.quantile(resampled, torch.tensor([0.025, 0.975])).tolist()
    spread = control.std().item() if len(control) > 1 else 0.0
    measured = len(control) > 0
    return {
        "control_mean": control.mean().item() if measured else None,
        "p_value": sign_flip_p(effects - control_effects.mean(0)) if measured else None,
        "effect_size": (effect - control.mean()).item() / spread if spread > 0 else None,
        "ci_low": low,
        "ci_high": high,
    }

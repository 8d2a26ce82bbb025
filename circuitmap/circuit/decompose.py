"""resid_pre of a layer as SAE features plus an error term, and what "removing" either means.

With the SAE's decode affine in the feature activations f, resid_pre x = decode(f) + e, and
feature i contributes ``(f_i - r_i) * u_i`` relative to a reference value r_i, with
``u_i = decode(one-hot i) - decode(0)``. Removing features S and (optionally) the error term is

    x' = x - sum_{i in S} (f_i - r_i) u_i - [error removed] (e - r_e)

at every real token (BOS and padding untouched). The reference (after Marks et al., *Sparse
Feature Circuits*) is, by default, the mean over tokens of texts where the target is silent
(``ablation="silent"``): the mean over text where the target fires still carries the concept.
``"zero"`` uses 0 and ``"mean"`` the mean over the corpus' last tokens (the Mean Vector's texts).
Removing every feature and the error term replaces x by the reference resid_pre itself.
:func:`removal_forward` runs many removals at once, one batched forward per group of prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from sae_lens import SAE

from circuitmap.method.ablation import ablation_forward, feature_directions
from circuitmap.model.forward import full_precision, run_recorded

if TYPE_CHECKING:
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.prompts import Prompts
    from circuitmap.config import Ablation, Target
    from circuitmap.method.baseline import Baseline
    from circuitmap.model.load import LoadedModel


@dataclass
class LayerDecomposition:
    """One layer's SAE, its feature directions, and the values removed components take."""

    layer: int
    sae: SAE
    directions: torch.Tensor  # (d_sae, d_model): u_i
    feature_ref: torch.Tensor  # (d_sae,): r_i
    error_ref: torch.Tensor  # (d_model,): r_e

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature activations (..., d_sae) and error term (..., d_model) of x (..., d_model),
        in float32 even inside :func:`~circuitmap.model.forward.matmul_precision`;
        differentiable in x where gradients are enabled."""
        x = x.float()
        device = self.sae.W_enc.device
        with full_precision(device):
            f = self.sae.encode(x.to(device)).to(x.device)
            return f, x - self.sae.decode(f.to(device)).to(x.device)

    def remove(
        self, x: torch.Tensor, real: torch.Tensor, removed: torch.Tensor, error: torch.Tensor
    ) -> torch.Tensor:
        """x (rows, seq, d_model) with, in row r, the features weighted by ``removed[r]``
        (rows, d_sae; 1 = removed) and the error term weighted by ``error[r]`` (rows,) replaced
        by their reference values at the ``real`` (rows, seq) tokens; weights given per token
        (rows, seq, d_sae) and (rows, seq) apply token by token. Differentiable in x and in the
        weights where gradients are enabled (fractional weights interpolate)."""
        f, e = self.encode(x)  # (rows, seq, d_sae), (rows, seq, d_model)
        if removed.dim() == 2:  # the same weights at every token
            removed, error = removed[:, None, :], error[:, None]
        delta = self._delta(f, e, removed, error[..., None])  # (rows, seq, d)
        return (x.float() - real[..., None] * delta).to(x.dtype)

    def remove_each(
        self, x: torch.Tensor, real: torch.Tensor, removed: torch.Tensor, error: torch.Tensor
    ) -> torch.Tensor:
        """Every removal applied to all of x (n, seq, d_model): removed (C, d_sae) and error
        (C,) give (C * n, seq, d_model), condition-major; x is encoded once."""
        f, e = self.encode(x)  # (n, seq, d_sae), (n, seq, d_model)
        delta = self._delta(f, e, removed[:, None, None, :], error[:, None, None, None])
        edited = x.float()[None] - real[None, ..., None] * delta
        return edited.flatten(0, 1).to(x.dtype)

    def _delta(
        self, f: torch.Tensor, e: torch.Tensor, removed: torch.Tensor, error: torch.Tensor
    ) -> torch.Tensor:
        """What removing changes, ``removed`` (..., d_sae) and ``error`` (..., 1) broadcast
        against f (..., d_sae) and e (..., d_model): (..., d_model)."""
        with full_precision(f.device):
            return (self.contributions(f) * removed) @ self.directions + error * (
                e - self.error_ref
            )

    def contributions(self, f: torch.Tensor) -> torch.Tensor:
        """(f - r): each feature's activation above its reference, same shape as f."""
        return f - self.feature_ref


@torch.no_grad()
def decompose(
    layer: int, sae: SAE, reference: torch.Tensor | None, ablation: Ablation
) -> LayerDecomposition:
    """The decomposition of ``layer`` whose reference is the mean over ``reference``
    (tokens, d_model) resid_pre vectors ("silent", "mean") or zero ("zero")."""
    sae.requires_grad_(False)  # gradients flow to the stream and to removal weights only
    directions = feature_directions(sae, list(range(sae.cfg.d_sae)))  # (d_sae, d_model)
    d_sae, d_model = directions.shape
    decomposition = LayerDecomposition(
        layer, sae, directions, torch.zeros(d_sae), torch.zeros(d_model)
    )
    if ablation != "zero":
        assert reference is not None, f"ablation {ablation!r} needs reference vectors"
        f, e = decomposition.encode(reference.cpu())  # (tokens, d_sae), (tokens, d_model)
        decomposition.feature_ref, decomposition.error_ref = f.mean(0), e.mean(0)
    return decomposition


def ablation_reference(
    lm: LoadedModel,
    ablation: Ablation,
    silent: Prompts,
    baseline: Baseline,
    layers: list[int],
) -> dict[int, torch.Tensor | None]:
    """What "removed" means at each of ``layers``, as :func:`decompose` takes it: resid_pre of
    every real token of the ``silent`` prompts ("silent"), the Mean Vector's texts
    (``baseline.vectors``, "mean"), both (tokens, d_model); or None ("zero")."""
    if ablation == "zero":
        return dict.fromkeys(layers)
    if ablation == "silent":
        return dict(token_vectors(lm, silent, layers))
    return {layer: baseline.vectors[layer] for layer in layers}


@torch.no_grad()
def token_vectors(lm: LoadedModel, prompts: Prompts, layers: list[int]) -> dict[int, torch.Tensor]:
    """resid_pre at ``layers`` of every real token of ``prompts``: layer -> (tokens, d_model)."""
    batch = prompts.batch(lm)
    resid = run_recorded(lm.model, batch.input_ids, batch.attention_mask, resid=layers).resid
    return {layer: h[batch.real].float().cpu() for layer, h in resid.items()}


def removal_masks(
    d_sae: int, groups: list[list[int]], errors: list[bool]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, d_sae) removal masks and (C,) error flags, one row per group of features."""
    removed = torch.zeros(len(groups), d_sae)
    for row, group in enumerate(groups):
        removed[row, group] = 1.0
    return removed, torch.tensor(errors, dtype=torch.float)


def removal_forward(
    lm: LoadedModel,
    dec: LayerDecomposition,
    run: PromptRun,
    removed: torch.Tensor,
    error: torch.Tensor,
    target: Target,
    read_layers: list[int],
) -> tuple[torch.Tensor, dict[int, list[tuple[PromptRun, torch.Tensor]]]]:
    """Every removal (``removed``: (C, d_sae), ``error``: (C,), see
    :meth:`LayerDecomposition.remove_each`) applied at every real token of ``run``'s prompts,
    in batched forwards over groups of similar length started at ``dec``'s layer: the target at
    each prompt's last token (C, n) and, per layer of ``read_layers``, resid_pre as a list with
    one (group, (C, n_group, seq_group, d_model)) entry per group of prompts."""
    targets = torch.zeros(len(removed), len(run.input_ids))
    resid: dict[int, list[tuple[PromptRun, torch.Tensor]]] = {m: [] for m in read_layers}
    for index, part in run.chunks(rows=len(removed)):
        n, seq = part.input_ids.shape
        out = ablation_forward(
            lm,
            part.input_ids.repeat(len(removed), 1),  # (C * n, seq)
            part.attention_mask.repeat(len(removed), 1),
            layer=dec.layer,
            edit=lambda hidden: None,
            target=target,
            read_layers=read_layers,
            start=dec.remove_each(part.resid[dec.layer], part.real, removed, error),
        )
        targets[:, index] = out.target.view(len(removed), n)
        for m in read_layers:
            resid[m].append((part, out.resid[m].view(len(removed), n, seq, -1)))
    return targets, resid

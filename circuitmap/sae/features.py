"""Step 3 of the method: decompose vectors into SAE features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.forward import run_recorded

if TYPE_CHECKING:
    from circuitmap.model.load import LoadedModel
    from circuitmap.model.tokens import Batch
    from circuitmap.sae.store import LayerSAE


@dataclass
class FeatureActivation:
    index: int
    activation: float  # on the optimised X
    mean_activation: float  # on the Mean Vector
    neuronpedia_url: str | None

    @property
    def increase(self) -> float:
        return self.activation - self.mean_activation


@dataclass
class FeatureReport:
    top: list[FeatureActivation]  # largest activations on X
    top_mean: list[FeatureActivation]  # largest activations on the Mean Vector
    added: list[FeatureActivation]  # largest increase from the Mean Vector to X
    sae_origin: str  # where the SAE came from

    @classmethod
    def from_dict(cls, data: dict) -> FeatureReport:
        lists = {k: [FeatureActivation(**f) for f in data[k]] for k in ("top", "top_mean", "added")}
        return cls(**lists, sae_origin=data["sae_origin"])


@torch.no_grad()
def feature_report(
    layer_sae: LayerSAE,
    vector: torch.Tensor,
    mean: torch.Tensor,
    k: int = 5,
    code: torch.Tensor | None = None,
) -> FeatureReport:
    """Top-``k`` SAE features of X (``vector``, (d_model,)), of the Mean Vector, and the ones the
    optimisation added most; ``code`` (d_sae,): X's own SAE code where X was optimised as one
    (else X is encoded)."""
    sae = layer_sae.sae
    acts = sae.encode(torch.stack([vector, mean]).float().to(sae.W_enc.device)).cpu()  # (2, d_sae)
    if code is not None:
        acts[0] = code.float()

    def rows(indices: torch.Tensor) -> list[FeatureActivation]:
        return [
            FeatureActivation(i, acts[0, i].item(), acts[1, i].item(), layer_sae.neuronpedia_url(i))
            for i in indices.tolist()
        ]

    k = min(k, acts.shape[1])
    return FeatureReport(
        top=rows(acts[0].topk(k).indices),
        top_mean=rows(acts[1].topk(k).indices),
        added=rows((acts[0] - acts[1]).topk(k).indices),
        sae_origin=layer_sae.origin,
    )


@torch.no_grad()
def sae_activations(lm: LoadedModel, layer_sae: LayerSAE, batch: Batch) -> torch.Tensor:
    """The SAE features of resid_pre at ``layer_sae``'s layer on every token of ``batch``:
    (batch, seq, d_sae), on the CPU (padding and BOS included: mask them with ``batch.real``)."""
    resid = run_recorded(lm.model, batch.input_ids, batch.attention_mask, resid=[layer_sae.layer])
    return layer_sae.sae.encode(resid.resid[layer_sae.layer].float()).cpu()

"""Feature-ablation effects at one upstream layer of a target: the circuit's edges.

Once the sweep knows the top features of every upstream layer, each layer l is independent:
one batched forward measures both edge kinds, keeping the SAE error term:
- feature -> target: ablate each top feature of l from the optimised X_l (and, on real prompts
  where the target fires, at every token of resid_pre l) and record the target's drop;
- feature -> feature: in the same forwards, read resid_pre of each later mapped layer m at the
  target's position, encode it with m's SAE, and record the drop of m's top features.
The prompts' clean resid_pre is recorded once per target, so the ablated copies of the prompts
start at layer l instead of re-running the layers before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .ablation import ablate, ablation_forward, control_features, feature_directions, necessity
from .baseline import Baseline, real_token_mask
from .config import MapConfig, Target
from .errors import CircuitmapError
from .hooks import record_resid_pre, run_body
from .model import LoadedModel
from .prompts import Prompts
from .sae_store import LayerSAE
from .storage import atomic_write_json, read_json
from .sweep import TargetSweep


@dataclass
class LayerEffects:
    """The ablation effects of one upstream layer's top features."""

    layer: int
    # One per top feature: target drop when it is ablated, on X and on the prompts (mean).
    target_effects: list[dict[str, float]]
    # Target drop with all top features ablated together: does the target collapse?
    all_ablated: dict[str, float]
    # Drops of later layers' top features when a top feature of this layer is ablated.
    feature_effects: list[dict[str, float]]
    seconds: float

    def save(self, folder: Path) -> None:
        atomic_write_json(folder / f"layer_{self.layer:02d}.json", self.__dict__)

    @classmethod
    def load(cls, path: Path) -> LayerEffects:
        return cls(**read_json(path))


@dataclass
class PromptRun:
    """A target's prompts, encoded once, with their clean resid_pre at every mapped layer."""

    input_ids: torch.Tensor  # (n, seq), left-padded; the target's peak is the last column
    attention_mask: torch.Tensor  # (n, seq)
    real: torch.Tensor  # (n, seq) bool: real tokens (not padding, not BOS)
    resid: dict[int, torch.Tensor]  # layer -> (n, seq, d_model) clean resid_pre


@torch.no_grad()
def prompt_run(lm: LoadedModel, prompts: Prompts, layers: list[int]) -> PromptRun:
    """Encode ``prompts`` and record their clean resid_pre at ``layers`` in one forward."""
    ids, attn = prompts.batch(lm)
    with record_resid_pre(lm.model, layers, stop=True) as resid:
        run_body(lm.model, ids, attn)
    return PromptRun(ids, attn, real_token_mask(lm, ids, attn).cpu(), dict(resid))


def _relative(effect: float, scale: float) -> float:
    return effect / scale if scale > 0 else 0.0


@torch.no_grad()
def layer_effects(
    lm: LoadedModel,
    config: MapConfig,
    sweep: TargetSweep,
    layer: int,
    run: PromptRun,
    saes: dict[int, LayerSAE],
    baseline: Baseline,
) -> LayerEffects:
    """Ablation effects of ``layer``'s top features on the target and on later layers' top
    features, on X_l and on the target's prompts."""
    start = time.perf_counter()
    target: Target = sweep.target
    sae = saes[layer].sae
    x = sweep.vectors[layer]  # (d_model,)
    top = [f.index for f in sweep.layers[layer].features.top]
    later = {m: s for m, s in sweep.layers.items() if m > layer}
    k = len(top)
    clean = run.resid[layer]  # (n, seq, d_model)
    # The top features, then config.controls features of similar activation level on the
    # prompts per top feature (for the necessity test).
    activity = sae.encode(clean.float())[run.real].mean(0).cpu()  # (d_sae,)
    controls = control_features(activity, top, config.controls)
    ablated = top + [c for row in controls for c in row]
    big_k = len(ablated)
    all_directions = feature_directions(sae, ablated)  # (K, d_model)
    if config.ablation == "mean":  # each feature's mean activation on the corpus
        all_replacement = sae.encode(baseline.vectors[layer].float()).mean(0).cpu()[ablated]
    elif config.ablation == "zero":
        all_replacement = torch.zeros(big_k)
    else:
        raise CircuitmapError(f"ablation {config.ablation!r} is not supported: use zero or mean")
    directions, replacement = all_directions[:k], all_replacement[:k]
    read = sorted(later)

    # On the optimised vector: rows = X, X minus each feature, X minus all of them.
    select = torch.cat([torch.zeros(1, k), torch.eye(k), torch.ones(1, k)])  # (k+2, k)
    x_feats = sae.encode(x[None].float())[0, top].cpu()  # (k,)
    rows = ablate(x, select * x_feats, directions, select * replacement)  # (k+2, d_model)
    dummy = lm.tokenizer(config.optim.dummy_prompt, return_tensors="pt")["input_ids"]
    ids = dummy.expand(k + 2, -1).to(lm.input_device)
    last = ids.shape[1] - 1

    def put_rows(hidden: torch.Tensor) -> torch.Tensor:  # (k+2, seq, d_model)
        patched = hidden.clone()
        patched[:, last] = rows.to(hidden.device, hidden.dtype)
        return patched

    on_x = ablation_forward(
        lm,
        ids,
        None,
        layer=layer,
        edit=put_rows,
        positions=torch.full((k + 2,), last),
        target=(target.layer, target.neuron),
        read_layers=read,
    )

    # On real prompts: each of the K features ablated alone at every token; rows ordered
    # ablation-major: clean, the k top features, then the controls.
    n, seq = run.input_ids.shape
    select_p = torch.cat([torch.zeros(1, big_k), torch.eye(big_k)]).repeat_interleave(n, 0)
    real = run.real.repeat(big_k + 1, 1)  # (rows, seq)

    def ablate_tokens(hidden: torch.Tensor) -> torch.Tensor:  # (rows, seq, d_model)
        feats = sae.encode(hidden.float())[..., ablated].cpu()  # (rows, seq, K)
        chosen = select_p[:, None, :] * real[..., None]  # (rows, seq, K)
        edited = ablate(
            hidden.float().cpu(), chosen * feats, all_directions, chosen * all_replacement
        )
        return edited.to(hidden.device, hidden.dtype)

    on_p = ablation_forward(
        lm,
        run.input_ids.repeat(big_k + 1, 1),  # ((K+1) * n, seq)
        run.attention_mask.repeat(big_k + 1, 1),
        layer=layer,
        edit=ablate_tokens,
        positions=torch.full(((big_k + 1) * n,), seq - 1),
        target=(target.layer, target.neuron),
        read_layers=read,
        start=clean.repeat(big_k + 1, 1, 1),  # ((K+1) * n, seq, d_model)
    )

    t_x = on_x.target  # (k+2,)
    t_p = on_p.target.view(big_k + 1, n)  # (K+1, n_prompts)
    drops = t_p[0] - t_p[1:]  # (K, n_prompts): target drop per ablation and prompt
    clean_p = t_p[0].mean().item()
    target_effects = []
    offset = k
    for i, feature in enumerate(top):
        vector_effect = (t_x[0] - t_x[i + 1]).item()
        prompt_effect = drops[i].mean().item()
        effect = {
            "feature": feature,
            "vector_effect": vector_effect,
            "vector_relative": _relative(vector_effect, t_x[0].item()),
            "prompt_effect": prompt_effect,
            "prompt_relative": _relative(prompt_effect, clean_p),
        }
        if controls[i]:
            effect |= necessity(drops[i], drops[offset : offset + len(controls[i])])
            effect["controls"] = controls[i]
        offset += len(controls[i])
        target_effects.append(effect)
    all_effect = (t_x[0] - t_x[k + 1]).item()
    all_ablated = {
        "vector_effect": all_effect,
        "vector_relative": _relative(all_effect, t_x[0].item()),
    }

    feature_effects = []
    for m in read:
        later_sae, later_top = saes[m].sae, [f.index for f in later[m].features.top]
        a_x = later_sae.encode(on_x.resid[m]).cpu()[:, later_top]  # (k+2, k_m)
        a_p = later_sae.encode(on_p.resid[m]).cpu()[:, later_top].view(big_k + 1, n, -1)
        for j, (feature_m, info) in enumerate(zip(later_top, later[m].features.top, strict=True)):
            scale = info.activation  # the later feature's activation on its own X_m
            for i, feature in enumerate(top):
                vector_effect = (a_x[0, j] - a_x[i + 1, j]).item()
                prompt_effect = (a_p[0, :, j] - a_p[i + 1, :, j]).mean().item()
                feature_effects.append(
                    {
                        "feature": feature,
                        "later_layer": m,
                        "later_feature": feature_m,
                        "vector_effect": vector_effect,
                        "vector_relative": _relative(vector_effect, scale),
                        "prompt_effect": prompt_effect,
                        "prompt_relative": _relative(prompt_effect, scale),
                    }
                )
    return LayerEffects(
        layer, target_effects, all_ablated, feature_effects, time.perf_counter() - start
    )

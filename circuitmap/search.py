"""The search driver: the gradient Patchscope at every upstream layer of a target, SAE features,
and feature-ablation effects, saved layer by layer so an interrupted map resumes.

Layers run deepest first. When layer l runs, the top features of every later mapped layer m are
known, so one batched forward measures both edge kinds:
- feature -> target: ablate each top feature of l from the optimised X_l (and, on real prompts
  where the target fires, at every token of resid_pre l) and record the target's drop;
- feature -> feature: in the same forwards, read resid_pre of each later layer m at the target's
  position, encode it with m's SAE, and record the drop of m's top features.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .ablation import ablate, ablation_forward, control_features, feature_directions, necessity
from .baseline import Baseline, compute_baseline, real_token_mask
from .config import MapConfig, from_dict, to_dict
from .corpus import corpus_texts
from .errors import CircuitmapError
from .features import FeatureReport, feature_report
from .hooks import record_resid_pre, run_body
from .model import LoadedModel, cache_root, load_model
from .optimise import optimise_vector
from .patchscope import patchscope
from .prompts import Prompts, top_prompts
from .restarts import restart_report
from .sae_store import LayerSAE, load_layer_sae
from .storage import (
    CONFIG_FILE,
    atomic_save_tensors,
    atomic_write_json,
    check_run_dir,
    read_json,
    read_tensors,
)

Log = Callable[[str], None]
LAYERS_DIR = "layers"


@dataclass
class LayerResult:
    """Everything measured at one upstream layer."""

    layer: int
    mean_activation: float  # target activation with the Mean Vector injected
    final_activation: float  # with the optimised X
    trajectory: list[float]
    contrastive_text: str
    plain_text: str
    features: FeatureReport
    # One per top feature: target drop when it is ablated, on X and on the prompts (mean).
    target_effects: list[dict[str, float]]
    # Target drop with all top features ablated together: does the target collapse?
    all_ablated: dict[str, float]
    # Drops of later layers' top features when a top feature of this layer is ablated.
    feature_effects: list[dict[str, float]]
    seconds: float
    vector: torch.Tensor  # (d_model,) optimised X
    # With config.restarts: reference top-k feature -> fraction of random restarts that found it.
    restart_agreement: dict[int, float] | None = None

    def save(self, run_dir: Path) -> None:
        """Tensors first, JSON last: the JSON file marks the layer as done."""
        stem = run_dir / LAYERS_DIR / f"layer_{self.layer:02d}"
        atomic_save_tensors(stem.with_suffix(".safetensors"), {"vector": self.vector})
        data = {k: v for k, v in self.__dict__.items() if k != "vector"}
        data["features"] = dataclasses.asdict(self.features)
        atomic_write_json(stem.with_suffix(".json"), data)

    @classmethod
    def load(cls, path: Path) -> LayerResult:
        data = read_json(path)
        data["features"] = FeatureReport.from_dict(data["features"])
        if data.get("restart_agreement") is not None:  # JSON keys are strings
            data["restart_agreement"] = {int(k): v for k, v in data["restart_agreement"].items()}
        return cls(**data, vector=read_tensors(path.with_suffix(".safetensors"))["vector"])


def done_layers(run_dir: Path) -> dict[int, LayerResult]:
    """Layers already finished in ``run_dir``."""
    results = {}
    for path in sorted((run_dir / LAYERS_DIR).glob("layer_*.json")):
        result = LayerResult.load(path)
        results[result.layer] = result
    return results


def _relative(effect: float, scale: float) -> float:
    return effect / scale if scale > 0 else 0.0


@torch.no_grad()
def _effects(
    lm: LoadedModel,
    config: MapConfig,
    layer: int,
    x: torch.Tensor,
    baseline: Baseline,
    prompts: Prompts,
    saes: dict[int, LayerSAE],
    top: list[int],
    later: dict[int, LayerResult],
) -> tuple[list[dict[str, float]], dict[str, float], list[dict[str, float]]]:
    """Ablation forwards of one layer: (target effects, all-ablated effect, feature effects)."""
    sae = saes[layer].sae
    k, target = len(top), (config.target_layer, config.neuron)
    # The top features, then config.controls features of similar activation level on the
    # prompts per top feature (for the necessity test).
    controls = control_features(_prompt_activity(lm, sae, layer, prompts), top, config.controls)
    ablated = top + [c for row in controls for c in row]
    big_k = len(ablated)
    all_directions = feature_directions(sae, ablated)  # (K, d_model)
    mean_acts = None  # (d_sae,) each feature's mean activation on the corpus, for mean ablation
    if config.ablation == "mean":
        mean_acts = sae.encode(baseline.vectors[layer].float()).mean(0).cpu()
    elif config.ablation != "zero":
        raise CircuitmapError(f"ablation {config.ablation!r} is not supported: use zero or mean")
    all_replacement = mean_acts[ablated] if mean_acts is not None else torch.zeros(big_k)
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
        target=target,
        read_layers=read,
    )

    # On real prompts: each of the K features ablated alone at every token; rows ordered
    # ablation-major: clean, the k top features, then the controls.
    n = len(prompts.texts)
    select_p = torch.cat([torch.zeros(1, big_k), torch.eye(big_k)]).repeat_interleave(n, 0)
    p_ids = prompts.input_ids.repeat(big_k + 1, 1)  # ((K+1) * n, seq)
    p_attn = prompts.attention_mask.repeat(big_k + 1, 1)
    real = real_token_mask(lm, p_ids, p_attn).cpu()  # (rows, seq)

    def ablate_tokens(hidden: torch.Tensor) -> torch.Tensor:  # (rows, seq, d_model)
        feats = sae.encode(hidden.float())[..., ablated].cpu()  # (rows, seq, K)
        chosen = select_p[:, None, :] * real[..., None]  # (rows, seq, K)
        edited = ablate(
            hidden.float().cpu(), chosen * feats, all_directions, chosen * all_replacement
        )
        return edited.to(hidden.device, hidden.dtype)

    on_p = ablation_forward(
        lm,
        p_ids,
        p_attn,
        layer=layer,
        edit=ablate_tokens,
        positions=prompts.positions.repeat(big_k + 1),
        target=target,
        read_layers=read,
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
    return target_effects, all_ablated, feature_effects


@torch.no_grad()
def _prompt_activity(lm: LoadedModel, sae: Any, layer: int, prompts: Prompts) -> torch.Tensor:
    """(d_sae,) each feature's mean activation over the prompts' real tokens at resid_pre."""
    with record_resid_pre(lm.model, [layer], stop=True) as resid:
        run_body(lm.model, prompts.input_ids, prompts.attention_mask)
    feats = sae.encode(resid[layer].float()).cpu()  # (n, seq, d_sae)
    real = real_token_mask(lm, prompts.input_ids, prompts.attention_mask).cpu()
    return feats[real].mean(0)


def map_layer(
    lm: LoadedModel,
    config: MapConfig,
    layer: int,
    baseline: Baseline,
    prompts: Prompts,
    saes: dict[int, LayerSAE],
    later: dict[int, LayerResult],
) -> LayerResult:
    """The gradient Patchscope, SAE features and ablation effects at one upstream layer."""
    start = time.perf_counter()
    mean = baseline.means[layer]
    optim = optimise_vector(
        lm,
        layer=layer,
        target_layer=config.target_layer,
        neuron=config.neuron,
        mean=mean,
        config=config.optim,
        norm_range=baseline.norm_ranges[layer],
    )
    scope = patchscope(lm, layer=layer, signal=optim.vector, noise=mean, config=config.patchscope)
    report = feature_report(saes[layer], optim.vector, mean, k=config.top_k)
    top = [f.index for f in report.top]
    target_effects, all_ablated, feature_effects = _effects(
        lm, config, layer, optim.vector, baseline, prompts, saes, top, later
    )
    agreement = None
    if config.restarts:
        agreement = restart_report(
            lm,
            saes[layer],
            target_layer=config.target_layer,
            neuron=config.neuron,
            mean=mean,
            config=config.optim,
            n_restarts=config.restarts,
            top_k=config.top_k,
            norm_range=baseline.norm_ranges[layer],
        ).agreement
    return LayerResult(
        layer=layer,
        mean_activation=optim.trajectory[0] if config.optim.init == "mean" else float("nan"),
        final_activation=optim.final_activation,
        trajectory=optim.trajectory,
        contrastive_text=scope.contrastive_text,
        plain_text=scope.plain_text,
        features=report,
        target_effects=target_effects,
        all_ablated=all_ablated,
        feature_effects=feature_effects,
        seconds=time.perf_counter() - start,
        vector=optim.vector,
        restart_agreement=agreement,
    )


def run_baseline(lm: LoadedModel, config: MapConfig, run_dir: Path, layers: list[int]) -> Baseline:
    """The Mean Vectors of all mapped layers (one pass), computed once and kept in the run."""
    path = run_dir / "baseline.safetensors"
    if path.exists():
        tensors, info = read_tensors(path), read_json(run_dir / "baseline.json")
        return Baseline(
            means={layer: tensors[f"mean_{layer}"] for layer in layers},
            norm_ranges={int(k): tuple(v) for k, v in info["norm_ranges"].items()},
            vectors={layer: tensors[f"vectors_{layer}"] for layer in layers},
            target_max=info["target_max"],
            n_texts=info["n_texts"],
        )
    texts = corpus_texts(config.corpus, cache_root(config.model.cache_dir))
    base = compute_baseline(
        lm,
        texts,
        layers,
        max_tokens=config.corpus.max_tokens,
        batch_size=config.corpus.batch_size,
        target=(config.target_layer, config.neuron),
    )
    atomic_save_tensors(
        path,
        {f"mean_{k}": v for k, v in base.means.items()}
        | {f"vectors_{k}": v for k, v in base.vectors.items()},
    )
    atomic_write_json(
        run_dir / "baseline.json",
        {"norm_ranges": base.norm_ranges, "target_max": base.target_max, "n_texts": base.n_texts},
    )
    return base


def _prompts(lm: LoadedModel, config: MapConfig, run_dir: Path) -> Prompts:
    """Real prompts where the target fires most; the chosen texts are kept in the run."""
    path = run_dir / "prompts.json"
    target = (config.target_layer, config.neuron)
    if path.exists():  # resuming: the same texts, re-encoded
        texts = read_json(path)["texts"]
        return top_prompts(lm, texts, target, n=len(texts), max_tokens=config.prompt_tokens)
    pool = corpus_texts(config.corpus, cache_root(config.model.cache_dir), n=config.prompt_pool)
    prompts = top_prompts(lm, pool, target, n=config.n_prompts, max_tokens=config.prompt_tokens)
    atomic_write_json(path, {"texts": prompts.texts, "activations": prompts.activations})
    return prompts


def start_map(config: MapConfig, run_dir: Path) -> None:
    """Write the config of a new map run (the source of truth when it resumes)."""
    atomic_write_json(run_dir / CONFIG_FILE, {"kind": "map", **to_dict(config)})


def load_map_config(run_dir: Path) -> MapConfig:
    """The config of a saved map run, or a one-line error."""
    data = read_json(check_run_dir(run_dir) / CONFIG_FILE)
    if data.pop("kind", None) != "map":
        raise CircuitmapError(f"{str(run_dir)!r} is not a map run folder")
    return from_dict(MapConfig, data)


def map_circuit(
    config: MapConfig, run_dir: Path, lm: LoadedModel | None = None, log: Log = print
) -> dict[int, LayerResult]:
    """Map every upstream layer not yet done in ``run_dir`` (deepest first); returns all layers."""
    lm = lm or load_model(config.model)
    layers = config.upstream_layers()
    if not layers:
        raise CircuitmapError("no upstream layers to map: the target layer is 0")
    lm.check_target(config.target_layer, config.neuron, layers)
    cache = cache_root(config.model.cache_dir)
    saes = {
        layer: load_layer_sae(layer, lm.d_model, cache, lm.model_id, config.sae) for layer in layers
    }
    results = done_layers(run_dir)
    todo = [layer for layer in reversed(layers) if layer not in results]
    if results:
        log(f"resuming: layers {sorted(results)} done, {len(todo)} left")
    baseline = run_baseline(lm, config, run_dir, layers)
    prompts = _prompts(lm, config, run_dir)
    for layer in todo:
        later = {m: results[m] for m in layers if m > layer}
        log(f"layer {layer}: optimising, decoding, ablating ...")
        result = map_layer(lm, config, layer, baseline, prompts, saes, later)
        result.save(run_dir)
        results[layer] = result
        top = ", ".join(f"F{f.index}" for f in result.features.top)
        log(
            f"layer {layer} done in {result.seconds:.1f} s: activation "
            f"{result.final_activation:.2f}, features {top}, decode {result.contrastive_text!r}"
        )
    return results

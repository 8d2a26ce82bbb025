"""Training residual-stream SAEs with sae-lens's SAE classes, and measuring their quality.

Inputs are scaled so that their mean norm is sqrt(d_model) (residual norms run from ~10^3 to
~10^4 across Gemma 3 layers), ``b_dec`` starts at the activation mean (the mean dominates the
residual stream), and the scale is folded back into the weights before saving, so the saved SAE
reads raw resid_pre activations and loads with ``sae_lens.SAE.load_from_disk``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sae_lens import (
    SAE,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.constants import SAE_CFG_FILENAME
from sae_lens.saes.sae import TrainCoefficientConfig, TrainingSAE, TrainStepInput
from tqdm.auto import tqdm

from circuitmap.config import to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.corpus import load_corpus
from circuitmap.model.hooks import edit_resid_pre, real_position_ids
from circuitmap.model.load import cache_root, model_id_for
from circuitmap.model.tokens import encode
from circuitmap.progress import progress
from circuitmap.sae.activations import collect_activations
from circuitmap.sae.store import (
    own_sae_dir,
    own_sae_root,
    read_quality,
    sae_folders,
    save_own_sae,
)

if TYPE_CHECKING:
    from circuitmap.config import MapConfig
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.train_config import SAETrainConfig

_OUTLIER_NORM = 10.0  # tokens with a norm above this many medians are left out of training


def _new_training_sae(d_in: int, config: SAETrainConfig) -> TrainingSAE:
    if config.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=config.width, k=config.k))
    cfg = JumpReLUTrainingSAEConfig(  # "jumprelu"
        d_in=d_in, d_sae=config.width, l0_coefficient=config.l0_coefficient
    )
    return JumpReLUTrainingSAE(cfg)


def _coefficients(sae: TrainingSAE) -> dict[str, float]:
    return {
        name: value.value if isinstance(value, TrainCoefficientConfig) else value
        for name, value in sae.get_coefficients().items()
    }


def train_sae(acts: torch.Tensor, config: SAETrainConfig) -> TrainingSAE:
    """Train on ``acts`` (n_tokens, d_model) for one pass; returns the training SAE with the
    input scale folded in (it reads raw activations)."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    d_in = acts.shape[1]
    scale = d_in**0.5 / acts[:10_000].float().norm(dim=-1).mean().item()
    sae = _new_training_sae(d_in, config)
    with torch.no_grad():
        sae.b_dec.copy_(acts.float().mean(0) * scale)
    optimiser = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=(0.9, 0.999))
    n_steps = max(1, acts.shape[0] // config.batch_tokens)
    # Linear decay over the last fifth of training.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, 5 * (1 - step / n_steps))
    )
    order = torch.randperm(acts.shape[0], generator=gen)
    since_fired = torch.zeros(config.width)  # tokens since each latent last fired
    dead_window = max(config.batch_tokens, acts.shape[0] // 10)
    coefficients = _coefficients(sae)
    sae.train()
    for step in tqdm(range(n_steps), desc="training SAE", unit="step"):
        rows = order[step * config.batch_tokens : (step + 1) * config.batch_tokens]
        batch = acts[rows].float() * scale  # (batch_tokens, d_model)
        out = sae.training_forward_pass(
            TrainStepInput(
                sae_in=batch,
                coefficients=coefficients,
                dead_neuron_mask=since_fired > dead_window,
                n_training_steps=step,
                is_logging_step=False,
            )
        )
        optimiser.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        since_fired += len(rows)
        since_fired[(out.feature_acts > 0).any(0)] = 0
    sae.eval()
    sae.fold_activation_norm_scaling_factor(scale)
    return sae


@torch.no_grad()
def reconstruction_quality(sae: SAE, acts: torch.Tensor) -> dict[str, float]:
    """Explained variance, mean L0 and dead-latent fraction on ``acts`` (n_tokens, d_model)."""
    x = acts.float()
    feats = sae.encode(x)  # (n_tokens, d_sae)
    recon = sae.decode(feats)
    residual = (x - recon).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum()
    return {
        "explained_variance": 1 - (residual / total).item(),
        "l0": (feats > 0).float().sum(-1).mean().item(),
        "dead_fraction": ((feats > 0).sum(0) == 0).float().mean().item(),
        "eval_tokens": x.shape[0],
    }


@torch.no_grad()
def next_token_loss(
    lm: LoadedModel, texts: list[str], context: int = 128, splice: tuple[SAE, int] | None = None
) -> float:
    """Mean next-token loss of the model on ``texts``; with ``splice`` = (sae, layer), resid_pre
    of ``layer`` is replaced by the SAE's reconstruction at every real (non-pad, non-BOS) token."""
    batch = encode(lm, texts, context)
    ids, attn, mask = batch.input_ids, batch.attention_mask, batch.real  # (batch, seq) each
    labels = ids.masked_fill(~mask, -100)
    edit: AbstractContextManager[object] = nullcontext()
    if splice is not None:
        sae, layer = splice

        def reconstruct(hidden: torch.Tensor) -> torch.Tensor:  # (batch, seq, d_model)
            recon = sae.decode(sae.encode(hidden.float())).to(hidden.dtype)
            return torch.where(mask[..., None], recon, hidden)

        edit = edit_resid_pre(lm.model, layer, reconstruct)
    with edit:
        out = lm.model(
            input_ids=ids, attention_mask=attn, position_ids=real_position_ids(attn), labels=labels
        )
    return out.loss.item()


def train_layer_saes(
    lm: LoadedModel,
    texts: list[str],
    layers: list[int],
    config: SAETrainConfig,
    root: Path,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[int, dict[str, Any]]:
    """Train and save one SAE per resid_pre layer under ``root`` (``resid_pre_{layer}/``).

    Layers that already have a saved SAE are skipped unless ``force`` (so an interrupted run
    resumes); activations of all remaining layers come from one pass over ``texts``. The last
    ``config.eval_texts`` texts are held out for the spliced-loss check. Returns layer -> quality.
    """
    todo = [
        layer
        for layer in layers
        if force or not (own_sae_dir(root, layer) / SAE_CFG_FILENAME).is_file()
    ]
    if not todo:
        return {}
    if len(texts) <= config.eval_texts:
        raise CircuitmapError(
            f"the corpus has {len(texts)} texts: SAE training needs more than {config.eval_texts}"
        )
    train_texts, eval_texts = texts[: -config.eval_texts], texts[-config.eval_texts :]
    start = time.perf_counter()
    acts = collect_activations(
        lm, train_texts, todo, n_tokens=config.n_tokens + config.eval_tokens, context=config.context
    )
    collect_seconds = time.perf_counter() - start
    clean_loss = next_token_loss(lm, eval_texts, config.context)
    results = {}
    overall = progress(len(todo), f"SAE layers {todo[0]}-{todo[-1]}")
    for layer in todo:
        layer_acts = acts.pop(layer)  # (tokens, d_model); freed after this layer
        norms = layer_acts.float().norm(dim=-1)
        # Attention-sink tokens with norms many times the median would dominate the loss.
        typical = norms <= _OUTLIER_NORM * norms.median()
        dropped = int((~typical).sum())
        layer_acts = layer_acts[typical]
        n_eval = min(config.eval_tokens, layer_acts.shape[0] // 10)
        train, held_out = layer_acts[:-n_eval], layer_acts[-n_eval:]
        t = time.perf_counter()
        sae = train_sae(train, config)
        spliced = next_token_loss(lm, eval_texts, config.context, (sae, layer))
        quality = {
            "outlier_tokens_dropped": dropped,
            **reconstruction_quality(sae, held_out),
            "clean_loss": clean_loss,
            "spliced_loss": spliced,
            "loss_increase": spliced / clean_loss - 1,
            "layer": layer,
            "hook": f"resid_pre of layer {layer} (= blocks.{layer - 1}.hook_resid_post)",
            "train_tokens": train.shape[0],
            "train_seconds": time.perf_counter() - t,
            "collect_seconds_all_layers": collect_seconds,
            "config": to_dict(config),
        }
        if not math.isfinite(quality["explained_variance"]) or not math.isfinite(spliced):
            raise CircuitmapError(
                f"SAE training for layer {layer} diverged (explained variance "
                f"{quality['explained_variance']}): nothing was saved; try a lower --lr"
            )
        sae.cfg.metadata.hook_name = f"blocks.{layer}.hook_resid_pre"
        sae.cfg.metadata.model_name = lm.model_id
        save_own_sae(sae, own_sae_dir(root, layer), quality)
        log(
            f"layer {layer}: explained variance {quality['explained_variance']:.3f}, "
            f"L0 {quality['l0']:.1f}, dead {quality['dead_fraction']:.1%}, "
            f"spliced loss {quality['loss_increase']:+.1%} -> {own_sae_dir(root, layer)}"
        )
        results[layer] = quality
        overall.update(1)
    overall.close()
    return results


def _own_sae_folders(config: MapConfig) -> dict[int, Path]:
    """Per layer of a map that reads circuitmap's own SAEs (no release or folder given), the
    folder its SAE is cached in or would be."""
    if config.sae.release or config.sae.path:
        return {}
    cache = cache_root(config.model.cache_dir)
    return sae_folders(config.sae, config.all_layers(), cache, model_id_for(config.model.name))


def missing_own_saes(config: MapConfig) -> list[int]:
    """The layers of a map that read circuitmap's own SAEs and have none cached yet."""
    folders = _own_sae_folders(config)
    return [layer for layer, f in folders.items() if not (f / SAE_CFG_FILENAME).is_file()]


RECIPE_FIELDS = ("architecture", "width", "k")  # what makes an SAE sparser or wider


def other_recipe_saes(config: MapConfig, recipe: SAETrainConfig) -> dict[int, str]:
    """The cached own SAEs of a map trained with another architecture, width or k than
    ``recipe`` (as their quality.json records it): layer -> how, e.g. ``"k 32"``."""
    found = {}
    for layer, folder in _own_sae_folders(config).items():
        trained = (read_quality(folder) or {}).get("config", {})
        differ = [
            f"{name} {trained[name]}"
            for name in RECIPE_FIELDS
            if name in trained and trained[name] != getattr(recipe, name)
        ]
        if differ:
            found[layer] = ", ".join(differ)
    return found


def train_missing_saes(
    lm: LoadedModel,
    config: MapConfig,
    recipe: SAETrainConfig,
    log: Callable[[str], None] = print,
) -> list[int]:
    """Train circuitmap's own SAE for every layer of :func:`missing_own_saes`; returns them."""
    missing = missing_own_saes(config)
    if missing:
        cache = cache_root(config.model.cache_dir)
        root = own_sae_root(cache, lm.model_id, config.sae)
        log(
            f"no SAE for resid_pre layers {missing} of {lm.model_id}: training them now into "
            f"{root} ({recipe.architecture}, width {recipe.width}, k {recipe.k}, "
            f"{recipe.n_tokens} tokens a layer; --no-train-saes to refuse)"
        )
        train_layer_saes(
            lm, load_corpus(config.corpus, cache)["text"], missing, recipe, root, log=log
        )
    return missing

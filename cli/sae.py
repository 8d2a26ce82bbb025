"""`circuitmap sae train` and `sae info`: circuitmap's own SAEs."""

from __future__ import annotations

from typing import Annotated

import typer

from circuitmap.config import (
    Architecture,
    ModelConfig,
    choices,
)
from circuitmap.sae.train_config import SAETrainConfig

from . import options as o
from .app import finite, sae_app, user_errors

_SAE = SAETrainConfig


@sae_app.command("train")
@user_errors
@o.with_model_options
def sae_train_cmd(
    model_config: ModelConfig,
    layers: Annotated[
        str, typer.Option(help="resid_pre layers, e.g. 0-11 or 4,8 (default: all layers).")
    ] = "",
    dataset: o.Dataset = None,
    split: o.Split = "train",
    text_column: o.TextColumn = "text",
    sae_dir: o.SaeDir = None,
    architecture: Annotated[
        str, typer.Option(help=" or ".join(choices(Architecture)) + ".")
    ] = _SAE.architecture,
    width: Annotated[int, typer.Option(help="Latents per SAE.", min=1)] = _SAE.width,
    k: Annotated[int, typer.Option(help="TopK: active latents per token.", min=1)] = _SAE.k,
    l0_coefficient: Annotated[
        float, typer.Option(help="JumpReLU sparsity penalty.", callback=finite(0))
    ] = _SAE.l0_coefficient,
    n_tokens: Annotated[
        int, typer.Option(help="Training tokens per layer.", min=1)
    ] = _SAE.n_tokens,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate.", callback=finite(0, above=True))
    ] = _SAE.lr,
    seed: Annotated[int, typer.Option(help="Seed.")] = _SAE.seed,
    force: Annotated[bool, typer.Option(help="Retrain layers that already have an SAE.")] = False,
) -> None:
    """Train one SAE per resid_pre layer on the corpus (one activation pass for all layers) and
    cache it where every command finds it. Finished layers are kept if the run is interrupted."""
    from circuitmap.files.corpus import load_corpus
    from circuitmap.model.load import cache_root, load_model
    from circuitmap.sae.store import own_sae_root
    from circuitmap.sae.train import train_layer_saes

    lm = load_model(model_config)
    chosen = o.parse_layers(layers, lm.n_layers) if layers else list(range(lm.n_layers))
    cache = cache_root(model_config.cache_dir)
    root = own_sae_root(cache, lm.model_id, o.sae_options(sae_dir=sae_dir))
    corpus = load_corpus(o.corpus_config(dataset, split, text_column, 1, 1), cache)
    train_config = SAETrainConfig(
        architecture=architecture,
        width=width,
        k=k,
        l0_coefficient=l0_coefficient,
        n_tokens=n_tokens,
        lr=lr,
        seed=seed,
    )
    done = train_layer_saes(
        lm,
        corpus["text"],
        chosen,
        train_config,
        root,
        force=force,
        log=typer.echo,
    )
    skipped = sorted(set(chosen) - set(done))
    if skipped:
        typer.echo(f"layers {skipped} already have SAEs in {root} (use --force to retrain)")


@sae_app.command("info")
@user_errors
def sae_info_cmd(
    model: o.Model = "embedded",
    cache_dir: o.CacheDir = None,
    sae_dir: o.SaeDir = None,
) -> None:
    """List circuitmap's SAEs for a model with their quality figures (held-out corpus text)."""
    from circuitmap.model.load import cache_root, model_id_for
    from circuitmap.sae.store import list_own_saes, own_sae_root

    from .report import print_sae_table

    source = o.sae_options(sae_dir=sae_dir)
    root = own_sae_root(cache_root(cache_dir), model_id_for(model), source)
    print_sae_table(root, list_own_saes(root))

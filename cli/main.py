"""`circuitmap`: a thin typer front over the circuitmap Python API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import ExplainConfig, OptimConfig, PatchscopeConfig
from circuitmap.errors import CircuitmapError

from . import options as o

app = typer.Typer(
    help="Map the circuit behind one MLP neuron: gradient Patchscope, SAE features, graphs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """circuitmap: explain a neuron, train SAEs, map and view circuits (see each --help)."""


def command(name: str) -> Callable[[Callable[..., Any]], Any]:
    """Register a command whose user mistakes print one line and exit 2 (never a traceback)."""
    return lambda fn: app.command(name)(user_errors(fn))


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a CircuitmapError into ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CircuitmapError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@command("explain")
def explain_cmd(
    target_layer: Annotated[int, typer.Option(help="Layer L of the target MLP neuron.")],
    neuron: Annotated[int, typer.Option(help="Index n of the neuron in layer L's MLP.")],
    layer: Annotated[int, typer.Option(help="Upstream layer l < L whose resid_pre is optimised.")],
    model: o.Model = "embedded",
    device: o.Device = "cpu",
    dtype: o.Dtype = "float32",
    cache_dir: o.CacheDir = None,
    dataset: o.Dataset = None,
    split: o.Split = "train",
    text_column: o.TextColumn = "text",
    n_texts: o.NTexts = 100,
    max_tokens: o.MaxTokens = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate (see --lr-units).")] = 0.05,
    lr_units: Annotated[
        str,
        typer.Option(help='"rms": lr x the Mean Vector\'s RMS coordinate; "raw": as the report.'),
    ] = "rms",
    steps: Annotated[int, typer.Option(help="Adam steps.", min=1)] = 50,
    seed: Annotated[int, typer.Option(help="Seed for --init random.")] = 0,
    init: Annotated[str, typer.Option(help='"mean" (the report) or "random".')] = "mean",
    norm_constraint: Annotated[
        bool, typer.Option(help="Keep ||X|| within the resid norms seen on the corpus.")
    ] = False,
    prompt: Annotated[str, typer.Option(help="Patchscope prompt.")] = PatchscopeConfig.prompt,
    inject_token: Annotated[str, typer.Option(help="Prompt token that receives X.")] = " x",
    alpha: Annotated[float, typer.Option(help="Contrast strength.")] = 1.5,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to decode.", min=1)] = 20,
    sae_release: o.SaeRelease = None,
    sae_id: o.SaeId = None,
    sae_path: o.SaePath = None,
    sae_hook: o.SaeHook = "resid_post",
    sae_dir: o.SaeDir = None,
    top_k: Annotated[int, typer.Option(help="SAE features to report.", min=1)] = 5,
    out: Annotated[Path, typer.Option(help="Folder that receives the run folder.")] = Path("runs"),
) -> None:
    """Explain one neuron from one upstream layer: Mean Vector, gradient ascent, SAE features,
    contrastive Patchscope. Without an SAE for the layer the SAE step is skipped with a note."""
    config = ExplainConfig(
        target_layer=target_layer,
        neuron=neuron,
        layer=layer,
        model=o.model_config(model, device, dtype, cache_dir),
        corpus=o.corpus_config(dataset, split, text_column, n_texts, max_tokens),
        optim=OptimConfig(
            lr=lr,
            lr_units=lr_units,
            steps=steps,
            seed=seed,
            init=init,
            norm_constraint=norm_constraint,
        ),
        patchscope=PatchscopeConfig(
            prompt=prompt, inject_token=inject_token, alpha=alpha, max_new_tokens=max_new_tokens
        ),
        sae=o.sae_source(sae_release, sae_id, sae_path, sae_hook, sae_dir),
        top_k=top_k,
    )
    from circuitmap.explain import explain, save_explain

    from .report import print_explain

    result = explain(config, log=lambda msg: typer.echo(msg, err=True))
    run_dir = save_explain(result, out)
    print_explain(result, run_dir)


sae_app = typer.Typer(help="Train, list and inspect residual-stream SAEs.", no_args_is_help=True)
app.add_typer(sae_app, name="sae")


@sae_app.command("train")
@user_errors
def sae_train_cmd(
    layers: Annotated[
        str, typer.Option(help="resid_pre layers, e.g. 0-11 or 4,8 (default: all layers).")
    ] = "",
    model: o.Model = "embedded",
    device: o.Device = "cpu",
    dtype: o.Dtype = "float32",
    cache_dir: o.CacheDir = None,
    dataset: o.Dataset = None,
    split: o.Split = "train",
    text_column: o.TextColumn = "text",
    sae_dir: o.SaeDir = None,
    architecture: Annotated[str, typer.Option(help="topk or jumprelu.")] = "topk",
    width: Annotated[int, typer.Option(help="Latents per SAE.", min=1)] = 2048,
    k: Annotated[int, typer.Option(help="TopK: active latents per token.", min=1)] = 32,
    l0_coefficient: Annotated[float, typer.Option(help="JumpReLU sparsity penalty.")] = 1.0,
    n_tokens: Annotated[int, typer.Option(help="Training tokens per layer.", min=1)] = 200_000,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Annotated[bool, typer.Option(help="Retrain layers that already have an SAE.")] = False,
) -> None:
    """Train one SAE per resid_pre layer on the corpus (one activation pass for all layers) and
    cache it where every command finds it. Finished layers are kept if the run is interrupted."""
    from circuitmap.config import SAETrainConfig
    from circuitmap.corpus import load_corpus
    from circuitmap.model import cache_root, load_model
    from circuitmap.sae_store import own_sae_root
    from circuitmap.sae_train import train_layer_saes

    config = o.model_config(model, device, dtype, cache_dir)
    lm = load_model(config)
    chosen = o.parse_layers(layers, lm.n_layers) if layers else list(range(lm.n_layers))
    cache = cache_root(cache_dir)
    root = own_sae_root(cache, lm.model_id, o.sae_source(None, None, None, "resid_pre", sae_dir))
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
        log=lambda msg: typer.echo(msg),
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
    from circuitmap.model import cache_root, model_id_for
    from circuitmap.sae_store import list_own_saes, own_sae_root

    from .report import print_sae_table

    source = o.sae_source(None, None, None, "resid_pre", sae_dir)
    root = own_sae_root(cache_root(cache_dir), model_id_for(model), source)
    print_sae_table(root, list_own_saes(root))


def main() -> None:
    app()

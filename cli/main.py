"""`circuitmap`: a thin typer front over the circuitmap Python API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import MapConfig, OptimConfig, PatchscopeConfig
from circuitmap.errors import CircuitmapError

from . import options as o

app = typer.Typer(
    help="Map the circuit behind one MLP neuron: gradient Patchscope, SAE features, graphs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_OPT, _SCOPE = OptimConfig, PatchscopeConfig


@app.callback()
def root() -> None:
    """circuitmap: explain a neuron, train SAEs, map and view circuits (see each --help)."""


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a CircuitmapError into ``error: ...`` on stderr and exit code 2 (no traceback)."""

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


def _log(message: str) -> None:
    typer.echo(message, err=True)


@app.command("explain")
@user_errors
def explain_cmd(
    target_layer: o.TargetLayer,
    neuron: o.Neuron,
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
    lr: o.Lr = _OPT.lr,
    lr_units: o.LrUnits = _OPT.lr_units,
    steps: o.Steps = _OPT.steps,
    seed: o.Seed = _OPT.seed,
    init: o.Init = _OPT.init,
    norm_constraint: o.NormConstraint = _OPT.norm_constraint,
    prompt: o.Prompt = _SCOPE.prompt,
    inject_token: o.InjectToken = _SCOPE.inject_token,
    alpha: o.Alpha = _SCOPE.alpha,
    max_new_tokens: o.MaxNewTokens = _SCOPE.max_new_tokens,
    sae_release: o.SaeRelease = None,
    sae_id: o.SaeId = None,
    sae_path: o.SaePath = None,
    sae_hook: o.SaeHook = "resid_post",
    sae_dir: o.SaeDir = None,
    top_k: o.TopK = 5,
    out: o.Out = Path("runs"),
) -> None:
    """Explain one neuron from one upstream layer: Mean Vector, gradient ascent, SAE features,
    contrastive Patchscope. Without an SAE for the layer the SAE step is skipped with a note."""
    from circuitmap.config import ExplainConfig
    from circuitmap.explain import explain, save_explain

    from .report import print_explain

    config = ExplainConfig(
        target_layer=target_layer,
        neuron=neuron,
        layer=layer,
        model=o.model_config(model, device, dtype, cache_dir),
        corpus=o.corpus_config(dataset, split, text_column, n_texts, max_tokens),
        optim=o.optim_config(lr, lr_units, steps, seed, init, norm_constraint),
        patchscope=o.patchscope_config(prompt, inject_token, alpha, max_new_tokens),
        sae=o.sae_source(sae_release, sae_id, sae_path, sae_hook, sae_dir),
        top_k=top_k,
    )
    result = explain(config, log=_log)
    print_explain(result, save_explain(result, out))


@app.command("map")
@user_errors
def map_cmd(
    target_layer: Annotated[
        int | None, typer.Option(help="Layer L of the target MLP neuron.")
    ] = None,
    neuron: Annotated[
        int | None, typer.Option(help="Index n of the neuron in layer L's MLP.")
    ] = None,
    layers: Annotated[
        str, typer.Option(help="Upstream layers to map, e.g. 4-8,10 (default: 0..L-1).")
    ] = "",
    resume: Annotated[
        Path | None, typer.Option(help="Finish an interrupted map run folder (its config wins).")
    ] = None,
    model: o.Model = "embedded",
    device: o.Device = "cpu",
    dtype: o.Dtype = "float32",
    cache_dir: o.CacheDir = None,
    dataset: o.Dataset = None,
    split: o.Split = "train",
    text_column: o.TextColumn = "text",
    n_texts: o.NTexts = 100,
    max_tokens: o.MaxTokens = 32,
    lr: o.Lr = _OPT.lr,
    lr_units: o.LrUnits = _OPT.lr_units,
    steps: o.Steps = _OPT.steps,
    seed: o.Seed = _OPT.seed,
    init: o.Init = _OPT.init,
    norm_constraint: o.NormConstraint = _OPT.norm_constraint,
    prompt: o.Prompt = _SCOPE.prompt,
    inject_token: o.InjectToken = _SCOPE.inject_token,
    alpha: o.Alpha = _SCOPE.alpha,
    max_new_tokens: o.MaxNewTokens = _SCOPE.max_new_tokens,
    sae_release: o.SaeRelease = None,
    sae_id: o.SaeId = None,
    sae_path: o.SaePath = None,
    sae_hook: o.SaeHook = "resid_post",
    sae_dir: o.SaeDir = None,
    top_k: o.TopK = 5,
    ablation: Annotated[str, typer.Option(help="zero, or mean (the corpus mean).")] = "zero",
    n_prompts: Annotated[int, typer.Option(help="Real prompts where the target fires.", min=1)] = 8,
    threshold: Annotated[
        float, typer.Option(help="Hide edges whose |relative effect| is below this.", min=0)
    ] = 0.05,
    out: o.Out = Path("runs"),
) -> None:
    """Map a whole circuit: the gradient Patchscope at every upstream layer, SAE features, and
    feature-ablation effects as weighted edges; writes interactive HTML and graph files."""
    from circuitmap.circuit import run_map
    from circuitmap.graph import strongest_path, target_id
    from circuitmap.model import load_model
    from circuitmap.search import load_map_config
    from circuitmap.storage import new_run_dir

    if resume is not None:
        config = load_map_config(resume)
        run_dir = resume
    else:
        if target_layer is None or neuron is None:
            raise CircuitmapError("map needs --target-layer and --neuron (or --resume RUN)")
        config = MapConfig(
            target_layer=target_layer,
            neuron=neuron,
            model=o.model_config(model, device, dtype, cache_dir),
            corpus=o.corpus_config(dataset, split, text_column, n_texts, max_tokens),
            optim=o.optim_config(lr, lr_units, steps, seed, init, norm_constraint),
            patchscope=o.patchscope_config(prompt, inject_token, alpha, max_new_tokens),
            sae=o.sae_source(sae_release, sae_id, sae_path, sae_hook, sae_dir),
            top_k=top_k,
            ablation=ablation,
            n_prompts=n_prompts,
            threshold=threshold,
        )
        run_dir = None
    lm = load_model(config.model)
    if layers and resume is None:
        config.layers = o.parse_layers(layers, lm.n_layers)
    lm.check_target(config.target_layer, config.neuron, config.upstream_layers())
    if run_dir is None:
        run_dir = new_run_dir(out, f"map-L{config.target_layer}-n{config.neuron}")
    typer.echo(f"mapping into {run_dir} (resume with --resume {run_dir})", err=True)
    graph, files = run_map(config, run_dir, lm, log=_log)
    chain = " → ".join(graph.nodes[n]["label"] for n in strongest_path(graph, target_id(config)))
    g = graph.graph
    typer.echo(
        f"\ncircuit: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges "
        f"({g['edges_hidden']} of {g['edges_total']} edges below threshold {g['threshold']} hidden)"
    )
    typer.echo(f"strongest chain: {chain}")
    for path in files:
        typer.echo(f"wrote {path}")


@app.command("export")
@user_errors
def export_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder.")],
    format: Annotated[
        str, typer.Option(help="Comma-separated: html,graphml,gexf,json,csv,neuronpedia.")
    ] = "html,graphml,gexf,json,csv,neuronpedia",
    threshold: Annotated[
        float | None, typer.Option(help="Edge threshold [default: the run's].", min=0)
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the files [default: the run].")
    ] = None,
) -> None:
    """Re-export a saved map in other formats or with another threshold, without the model."""
    from circuitmap.circuit import reexport

    formats = tuple(f.strip() for f in format.split(",") if f.strip())
    _, files = reexport(run, formats, threshold, out)
    for path in files:
        typer.echo(f"wrote {path}")


@app.command("view")
@user_errors
def view_cmd(
    run_or_file: Annotated[Path, typer.Argument(help="A map run folder or an HTML file.")],
    serve: Annotated[
        bool, typer.Option(help="Serve it on localhost instead of opening the file.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8000,
) -> None:
    """Open a circuit's interactive HTML in the browser (or serve it locally)."""
    from .view import view

    view(run_or_file, serve=serve, port=port)


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
    from circuitmap.model import cache_root, model_id_for
    from circuitmap.sae_store import list_own_saes, own_sae_root

    from .report import print_sae_table

    source = o.sae_source(None, None, None, "resid_pre", sae_dir)
    root = own_sae_root(cache_root(cache_dir), model_id_for(model), source)
    print_sae_table(root, list_own_saes(root))


def main() -> None:
    app()

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
    out: Annotated[Path, typer.Option(help="Folder that receives the run folder.")] = Path("runs"),
) -> None:
    """Explain one neuron from one upstream layer: Mean Vector, gradient ascent, Patchscope."""
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
    )
    from circuitmap.explain import explain, save_explain

    from .report import print_explain

    result = explain(config, log=lambda msg: typer.echo(msg, err=True))
    run_dir = save_explain(result, out)
    print_explain(result, run_dir)


def main() -> None:
    app()

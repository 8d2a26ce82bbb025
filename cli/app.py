"""The `circuitmap` typer app, its command groups, and how a command reports a user mistake."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from circuitmap.errors import CircuitmapError

app = typer.Typer(
    help="Map the circuit behind one MLP neuron: gradient Patchscope, SAE features, graphs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold [ray] and [default: ...] literally
)
validate_app = typer.Typer(
    help="Validate a circuit: faithfulness, random restarts, necessity against controls.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(validate_app, name="validate")
sae_app = typer.Typer(
    help="Train, list and inspect residual-stream SAEs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sae_app, name="sae")


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


def log(message: str) -> None:
    """Progress notes go to stderr, so stdout holds only the results."""
    typer.echo(message, err=True)

"""The `circuitmap` typer app, its command groups, and how a command reports a user mistake."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import typer

from circuitmap.errors import CircuitmapError, check_number

try:  # typer vendors click from 0.22 on; its exceptions are not click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer with click itself
    from click import exceptions as click_errors

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


def finite(
    low: float = -math.inf, high: float = math.inf, *, above: bool = False
) -> Callable[[typer.CallbackParam, float | None], float | None]:
    """The callback every float option passes through: a value that is not a finite number in
    [low, high] (``above``: in (low, high]) is :func:`~circuitmap.errors.check_number`'s
    one-line error, raised while the command line is parsed, before any work."""

    def check(param: typer.CallbackParam, value: float | None) -> float | None:
        if value is not None:
            try:
                check_number(param.opts[0], value, low, high, above=above)
            except CircuitmapError as exc:
                raise click_errors.UsageError(str(exc)) from None
        return value

    return check

"""`circuitmap`: a thin typer front over the circuitmap Python API. The commands live in
:mod:`.checks`, :mod:`.mapping` and :mod:`.sae`; importing them registers them."""

from __future__ import annotations

import sys

import typer

from . import checks, mapping, sae  # noqa: F401  (registers the commands)
from .app import app, click_errors

__all__ = ["app", "main"]


def main() -> None:
    """The `circuitmap` command: a usage mistake (bad option value, unknown option) is one
    ``error:`` line and exit 2 like every other user error, not a boxed usage message."""
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        code = 0
    except click_errors.UsageError as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        code = 2
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)

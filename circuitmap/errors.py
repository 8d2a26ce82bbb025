"""The one exception type for user mistakes (the CLI prints it as one line and exits 2), and the
checks that raise it with the bad value and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal


class CircuitmapError(Exception):
    """A problem with the user's input (bad layer, missing SAE, unreadable run folder, ...)."""


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise a one-line CircuitmapError unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise CircuitmapError(f"{name} {value} is out of range: valid values are {low}..{high}")


def check_number(
    name: str, value: float, low: float = -math.inf, high: float = math.inf, *, above: bool = False
) -> None:
    """A one-line error unless ``value`` is a finite number in [low, high] (``above``: in
    (low, high])."""
    number = isinstance(value, int | float) and math.isfinite(value)
    if not (number and (low < value if above else low <= value) and value <= high):
        bounds = [] if low == -math.inf else [f"{'above' if above else 'of at least'} {low}"]
        bounds += [] if high == math.inf else [f"at most {high}"]
        raise CircuitmapError(
            f"{name} {value} is not valid: use a finite number {' and '.join(bounds)}".rstrip()
        )


def check_share(name: str, value: float) -> None:
    """A one-line error unless ``value`` is a share in (0, 1]."""
    if not (isinstance(value, int | float) and 0 < value <= 1):
        raise CircuitmapError(f"{name} {value} is outside (0, 1]: use a share above 0, at most 1")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """A one-line error unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise CircuitmapError(f"{name} {value!r} is not supported: use {' | '.join(allowed)}")


def check_literals(config: Any) -> None:
    """A one-line error for any ``Literal``-typed field of the dataclass ``config`` that holds
    another value."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if typing.get_origin(hints[f.name]) is Literal:
            check_choice(f.name, getattr(config, f.name), typing.get_args(hints[f.name]))


def fill_layer(template: str, layer: int, option: str) -> str:
    """``template`` with ``{layer}`` filled in, or a one-line error for any other field."""
    try:
        return template.format(layer=layer)
    except (KeyError, IndexError, ValueError) as exc:
        raise CircuitmapError(
            f"{option} {template!r} is not a valid template: the only field is {{layer}} ({exc})"
        ) from None

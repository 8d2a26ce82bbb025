"""The graph's node ids and the short label a reader sees first on a feature's node."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitmap.circuit.contexts import Context

ERROR = -1  # the feature index that stands for a layer's SAE error term (its error node)


def feature_id(layer: int, index: int) -> str:
    """A node id: ``L{layer}.F{index}``, or ``L{layer}.E`` for the layer's error node."""
    return f"L{layer}.E" if index == ERROR else f"L{layer}.F{index}"


def short_label(layer: int, feature: int, contexts: list[Context], words: int = 3) -> str:
    """``F302 L8: circle · radius``: the feature and the distinct tokens where it fires most."""
    tokens = list(dict.fromkeys(c.token.strip() for c in contexts if c.token.strip()))[:words]
    return f"F{feature} L{layer}" + (f": {' · '.join(tokens)}" if tokens else "")

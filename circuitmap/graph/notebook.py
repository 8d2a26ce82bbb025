"""The explorer inline in a Jupyter notebook: :class:`Explorer` (what
:func:`circuitmap.mapping.exports.show` returns) is an object that Jupyter renders
with its ``_repr_html_``, the same page as ``circuit.html`` inside an ``<iframe srcdoc>``. The
page is self-contained (its script, styles and data inline), so it works offline; the iframe's
sandbox lets its script run but keeps it apart from the notebook's page and origin."""

from __future__ import annotations

import html
from dataclasses import dataclass

import networkx as nx

from circuitmap.graph.explorer import circuit_html


@dataclass
class Explorer:
    """A circuit graph shown as the explorer; ``height`` in CSS px."""

    graph: nx.DiGraph
    height: int = 820

    def page(self) -> str:
        """The explorer page, as ``circuit.html`` holds it."""
        return circuit_html(self.graph)

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.page(), quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd"></iframe>'
        )

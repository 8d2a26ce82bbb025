"""A finished map's graph as it is exported (pruned, grouped into supernodes), exported again
with other formats or thresholds, or shown in a notebook: all without the model or torch."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from circuitmap.errors import check_share
from circuitmap.files.storage import writable_dir
from circuitmap.graph.export import FORMATS, export
from circuitmap.graph.notebook import Explorer
from circuitmap.graph.prune import prune
from circuitmap.graph.supernodes import add_supernodes
from circuitmap.mapping.folder import load_finished_map


def exported_graph(
    run_dir: Path, thresholds: tuple[float | None, float | None] = (None, None)
) -> nx.DiGraph:
    """A finished map's graph as it is exported: pruned with ``thresholds`` (node, edge; None:
    the run's) and grouped into supernodes."""
    config, graph = load_finished_map(run_dir)
    node, edge = thresholds
    pruned = prune(
        graph,
        config.node_threshold if node is None else node,
        config.edge_threshold if edge is None else edge,
    )
    return add_supernodes(pruned)


def reexport(
    run_dir: Path,
    formats: tuple[str, ...] = FORMATS,
    thresholds: tuple[float | None, float | None] = (None, None),
    out: Path | None = None,
    scan: str | None = None,
) -> tuple[nx.DiGraph, list[Path]]:
    """Export a finished map again (other formats, or other node and edge thresholds; None:
    the run's) without the model. A threshold outside (0, 1] is a one-line error."""
    for name, value in zip(("node threshold", "edge threshold"), thresholds, strict=True):
        if value is not None:
            check_share(name, value)
    pruned = exported_graph(run_dir, thresholds)
    if out is not None:
        writable_dir(out, "output folder")
    return pruned, export(pruned, out or run_dir, formats, scan=scan)


def show(
    run_dir: str | Path,
    node_threshold: float | None = None,
    edge_threshold: float | None = None,
    height: int = 820,
) -> Explorer:
    """The explorer of a finished map run, as its export would draw it (thresholds: shares as
    ``circuitmap export`` takes them; None: the run's)."""
    return Explorer(exported_graph(Path(run_dir), (node_threshold, edge_threshold)), height)

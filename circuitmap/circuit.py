"""A whole map run: search every layer, build the graph, write the exports."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from .config import MapConfig
from .errors import CircuitmapError
from .export import FORMATS, GRAPH_FILE, export, load_graph, node_link_json
from .graph import build_graph, prune
from .model import LoadedModel
from .search import Log, load_map_config, map_circuit, start_map
from .storage import atomic_write_text, check_run_dir


def run_map(
    config: MapConfig, run_dir: Path, lm: LoadedModel | None = None, log: Log = print
) -> tuple[nx.DiGraph, list[Path]]:
    """Map (or finish mapping) ``run_dir``; writes graph.json (the full graph) and the pruned
    exports. Returns the pruned graph and the files written."""
    if not (run_dir / "config.json").exists():
        start_map(config, run_dir)
    results = map_circuit(config, run_dir, lm, log)
    graph = build_graph(config, results, config.model.name)
    atomic_write_text(run_dir / GRAPH_FILE, node_link_json(graph))
    pruned = prune(graph, config.threshold)
    return pruned, [run_dir / GRAPH_FILE, *export(pruned, run_dir)]


def reexport(
    run_dir: Path,
    formats: tuple[str, ...] = FORMATS,
    threshold: float | None = None,
    out: Path | None = None,
) -> tuple[nx.DiGraph, list[Path]]:
    """Export a finished map again (other formats or threshold) without the model."""
    check_run_dir(run_dir)
    if not (run_dir / GRAPH_FILE).is_file():
        raise CircuitmapError(
            f"{str(run_dir)!r} has no {GRAPH_FILE}: finish it with `circuitmap map --resume`"
        )
    config = load_map_config(run_dir)
    pruned = prune(
        load_graph(run_dir / GRAPH_FILE), config.threshold if threshold is None else threshold
    )
    return pruned, export(pruned, out or run_dir, formats)

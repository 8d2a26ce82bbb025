"""A whole map run: search every layer, build the graph, write the exports."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from circuitmap.circuit.driver import (
    Log,
    load_map_config,
    map_circuit,
    run_baseline,
    target_dir,
)
from circuitmap.circuit.executors import Executor, LocalExecutor
from circuitmap.circuit.graph import build_graph, merge_graphs, prune
from circuitmap.config import MapConfig
from circuitmap.errors import CircuitmapError
from circuitmap.files.corpus import corpus_texts
from circuitmap.files.export import FORMATS, GRAPH_FILE, export, load_graph, node_link_json
from circuitmap.files.storage import atomic_write_text, check_run_dir, writable_dir
from circuitmap.model.load import LoadedModel, cache_root
from circuitmap.sae.store import SAEStore
from circuitmap.validate.labels import (
    LabelRow,
    causal_description,
    labels_csv,
    similarity,
    top_snippets,
)


def run_map(
    config: MapConfig,
    run_dir: Path,
    executor: Executor | None = None,
    log: Log = print,
) -> tuple[nx.DiGraph, list[Path]]:
    """Map (or finish mapping) ``run_dir`` on ``executor`` (default: this process); writes each
    target's full graph, graph.json (all targets merged, unpruned) and the pruned exports.
    Returns the pruned merged graph and the files written."""
    results = map_circuit(config, run_dir, executor or LocalExecutor(config), log)
    graphs = []
    for t in config.targets:
        graphs.append(build_graph(config, t, results[t.id]))
        atomic_write_text(target_dir(run_dir, t) / GRAPH_FILE, node_link_json(graphs[-1]))
    graph = merge_graphs(graphs)
    atomic_write_text(run_dir / GRAPH_FILE, node_link_json(graph))
    pruned = prune(graph, config.node_threshold, config.edge_threshold)
    return pruned, [run_dir / GRAPH_FILE, *export(pruned, run_dir)]


def reexport(
    run_dir: Path,
    formats: tuple[str, ...] = FORMATS,
    thresholds: tuple[float | None, float | None] = (None, None),
    out: Path | None = None,
    scan: str | None = None,
) -> tuple[nx.DiGraph, list[Path]]:
    """Export a finished map again (other formats, or other node and edge thresholds; None:
    the run's) without the model."""
    check_run_dir(run_dir)
    config = load_map_config(run_dir)  # an explain run is told it is not a map
    if not (run_dir / GRAPH_FILE).is_file():
        raise CircuitmapError(
            f"{str(run_dir)!r} has no {GRAPH_FILE}: finish it with `circuitmap map --resume`"
        )
    if out is not None:
        writable_dir(out, "output folder")
    node, edge = thresholds
    pruned = prune(
        load_graph(run_dir / GRAPH_FILE),
        config.node_threshold if node is None else node,
        config.edge_threshold if edge is None else edge,
    )
    return pruned, export(pruned, out or run_dir, formats, scan=scan)


def relabel(
    run_dir: Path,
    lm: LoadedModel,
    imported: dict[tuple[int, int], str] | None = None,
    min_similarity: float = 0.1,
    n_snippets: int = 3,
    log: Log = print,
) -> tuple[list[LabelRow], list[Path]]:
    """Observational and causal descriptions of every feature of a finished map, side by side;
    writes labels.csv (the corrections table), adds them to graph.json and re-exports."""
    config = load_map_config(run_dir)
    if not (run_dir / GRAPH_FILE).is_file():
        raise CircuitmapError(
            f"{str(run_dir)!r} has no {GRAPH_FILE}: finish it with `circuitmap map --resume`"
        )
    imported = imported or {}
    graph = load_graph(run_dir / GRAPH_FILE)
    layers = config.all_layers()
    baseline = run_baseline(config, run_dir, LocalExecutor(config, lm))
    pool = corpus_texts(config.corpus, cache_root(config.model.cache_dir), n=config.prompt_pool)
    saes = SAEStore.for_model(lm, config.sae, config.model.cache_dir)
    rows = []
    for layer in layers:
        nodes = [
            (n, d)
            for n, d in graph.nodes(data=True)
            if d["kind"] == "feature" and d["layer"] == layer
        ]
        if not nodes:
            continue
        layer_sae = saes.layer(layer)
        log(f"layer {layer}: describing {len(nodes)} features ...")
        snippets = top_snippets(lm, layer_sae, [d["index"] for _, d in nodes], pool, n=n_snippets)
        for node, d in nodes:
            causal = causal_description(
                lm, layer_sae, d["index"], d["activation"], baseline.means[layer], config.patchscope
            )
            label = imported.get((layer, d["index"]), "")
            observed = label or " ".join(snippets[d["index"]])
            score = similarity(causal, observed)
            row = LabelRow(
                layer,
                d["index"],
                label,
                snippets[d["index"]],
                causal,
                score,
                score < min_similarity,
            )
            rows.append(row)
            graph.nodes[node].update(
                imported_label=label,
                snippets=" | ".join(row.snippets),
                causal_description=causal,
                label_similarity=score,
                label_flagged=row.flagged,
            )
    atomic_write_text(run_dir / GRAPH_FILE, node_link_json(graph))
    atomic_write_text(run_dir / "labels.csv", labels_csv(rows))
    return rows, [
        run_dir / "labels.csv",
        *export(prune(graph, config.node_threshold, config.edge_threshold), run_dir),
    ]

"""A whole map run: search every layer, build the graph, write the exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from circuitmap.circuit.dashboards import TEXTS as DASHBOARD_TEXTS
from circuitmap.circuit.prompts import MAP_PROMPTS
from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import DASHBOARDS_FILE, GRAPH_FILE, target_dir
from circuitmap.files.lock import run_lock
from circuitmap.files.prompt_sets import read_prompt_set
from circuitmap.files.storage import (
    atomic_write_json,
    atomic_write_text,
    new_run_dir,
    read_json,
    writable_dir,
)
from circuitmap.graph.build import build_graph
from circuitmap.graph.export import export, node_link_json
from circuitmap.graph.nodes import feature_id
from circuitmap.graph.prune import merge_graphs, prune
from circuitmap.graph.supernodes import add_supernodes
from circuitmap.mapping.driver import check_targets, map_circuit
from circuitmap.mapping.executors import LocalExecutor, make_executor
from circuitmap.mapping.folder import check_made_with, load_map_config, start_map
from circuitmap.mapping.saved import check_saved
from circuitmap.mapping.worker import Worker
from circuitmap.method.patchscope import check_prompt
from circuitmap.model.load import (
    cache_root,
    load_model,
    load_tokenizer,
    model_id_for,
    model_shape,
)
from circuitmap.sae.store import check_sae_folders
from circuitmap.sae.train import missing_own_saes, other_recipe_saes, train_missing_saes
from circuitmap.sae.train_config import SAETrainConfig

if TYPE_CHECKING:
    from circuitmap.config import ExecutorName, MapConfig
    from circuitmap.graph.build import TargetResult
    from circuitmap.mapping.driver import Log
    from circuitmap.mapping.executors import Executor


def check_own_saes(config: MapConfig, train_saes: bool) -> list[int]:
    """The layers whose own SAEs the map must train; with ``train_saes`` off, a one-line error
    if there is any."""
    missing = missing_own_saes(config)
    if missing and not train_saes:
        raise CircuitmapError(
            f"no SAE for resid_pre layers {missing}: make them with `circuitmap sae train "
            f"--layers {','.join(map(str, missing))}`, drop --no-train-saes, or pass "
            "--sae-release/--sae-id or --sae-path"
        )
    return missing


def check_map(config: MapConfig, train_saes: bool = True) -> None:
    """Everything a map needs, checked before any work (one-line errors): targets and layers in
    the model, the Patchscope prompt, the SAE folders (and, with ``train_saes`` off, that no own
    SAE is missing), the prompt set."""
    check_targets(config, model_shape(config.model))
    check_prompt(load_tokenizer(config.model), config.patchscope)
    check_sae_folders(
        config.sae,
        config.all_layers(),
        cache_root(config.model.cache_dir),
        model_id_for(config.model.name),
    )
    check_own_saes(config, train_saes)
    if config.prompts:  # readable, and enough for a build and a held-out half
        read_prompt_set(config.prompts, at_least=MAP_PROMPTS)


def new_map(
    config: MapConfig,
    out: Path,
    run_dir: Path | None = None,
    train_saes: bool = True,
    confirm: Callable[[MapConfig], None] | None = None,
) -> Path:
    """Check a new map, then create its run folder (``run_dir``, or a new one under ``out``) and
    write its config: from then on :func:`resume_map` can finish whatever fails. ``confirm``
    runs after the checks and before anything is written (it raises to stop)."""
    if run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir()):
        raise CircuitmapError(
            f"run folder {str(run_dir)!r} is not empty: use --resume to finish it"
        )
    check_map(config, train_saes)
    if confirm is not None:
        confirm(config)
    if run_dir is None:
        name = "map-" + "-".join(t.id for t in config.targets[:3])
        run_dir = new_run_dir(writable_dir(out, "output folder"), name)
    writable_dir(run_dir, "run folder")
    start_map(config, run_dir)
    return run_dir


def resume_map(run_dir: Path, train_saes: bool = True) -> MapConfig:
    """The config of an interrupted map, checked like a new one, every result the folder holds
    read and checked, and the config compared with what its finished parts were made with (a
    damaged result or an edited config is an error before SAE training or any other work)."""
    config = load_map_config(run_dir)
    check_map(config, train_saes)
    writable_dir(run_dir, "run folder")
    check_saved(config, run_dir)
    check_made_with(config, run_dir)
    return config


def finish_map(
    config: MapConfig,
    run_dir: Path,
    *,
    executor: ExecutorName = "local",
    train_saes: bool = True,
    sae_tokens: int = SAETrainConfig.n_tokens,
    ray_options: dict[str, Any] | None = None,
    log: Log = print,
) -> tuple[nx.DiGraph, list[Path]]:
    """Train the own SAEs the map lacks (``sae_tokens`` a layer; with ``train_saes`` off, a
    one-line error instead), then :func:`run_map` on a ``local`` or ``ray`` executor."""
    missing = check_own_saes(config, train_saes)
    recipe = SAETrainConfig(n_tokens=sae_tokens)
    other = other_recipe_saes(config, recipe)
    if other:
        layers = ",".join(map(str, other))
        log(
            f"note: the cached SAEs of layers {layers} were trained with "
            f"{'; '.join(sorted(set(other.values())))}, not this version's {recipe.architecture}, "
            f"width {recipe.width}, k {recipe.k} (sparser SAEs gave more faithful circuits): "
            f"`circuitmap sae train --layers {layers} --force` retrains them"
        )
    lm = None
    if missing:
        lm = load_model(config.model)
        train_missing_saes(lm, config, recipe, log=log)
    pool = make_executor(
        executor, config, lm if executor == "local" else None, **(ray_options or {})
    )
    try:
        return run_map(config, run_dir, pool, log=log)
    finally:
        pool.close()


def run_map(
    config: MapConfig,
    run_dir: Path,
    executor: Executor | None = None,
    log: Log = print,
) -> tuple[nx.DiGraph, list[Path]]:
    """Map (or finish mapping) ``run_dir`` on ``executor`` (default: this process); writes each
    target's full graph, graph.json (all targets merged, unpruned) and the pruned exports,
    holding the folder's lock (a folder another process maps is a one-line error).
    Returns the pruned merged graph and the files written."""
    with run_lock(run_dir):
        executor = executor or LocalExecutor(config)
        results = map_circuit(config, run_dir, executor, log)
        dashboards = run_dashboards(config, run_dir, executor, results)
        graphs = []
        for t in config.targets:
            graph = with_dashboards(build_graph(config, t, results[t.id]), dashboards[t.id])
            graphs.append(graph)
            atomic_write_text(target_dir(run_dir, t) / GRAPH_FILE, node_link_json(graph))
        graph = merge_graphs(graphs)
        atomic_write_text(run_dir / GRAPH_FILE, node_link_json(graph))
        pruned = add_supernodes(prune(graph, config.node_threshold, config.edge_threshold))
        return pruned, [run_dir / GRAPH_FILE, *export(pruned, run_dir)]


def run_dashboards(
    config: MapConfig, run_dir: Path, executor: Executor, results: dict[str, TargetResult]
) -> dict[str, dict[str, Any]]:
    """Each target's node dashboards (:mod:`circuitmap.circuit.dashboards`), computed once and
    kept in ``targets/<id>/dashboards.json``; by target id."""
    found = {}
    for t in config.targets:
        path = target_dir(run_dir, t) / DASHBOARDS_FILE
        if not path.exists():
            result = results[t.id]
            atomic_write_json(
                path, executor.call(Worker.dashboards, result.selection, result.prompts)
            )
        found[t.id] = read_json(path)
    return found


def with_dashboards(graph: nx.DiGraph, dashboards: dict[str, Any]) -> nx.DiGraph:
    """``graph`` with its target's and features' dashboard attributes set (see
    :func:`circuitmap.circuit.dashboards.node_dashboards`) and the corpus texts they read,
    ``dashboard_texts``."""
    found = {graph.graph["targets"]: dashboards["target"]}
    for layer, by_feature in dashboards["features"].items():
        for feature, attributes in by_feature.items():
            found[feature_id(int(layer), int(feature))] = attributes
    for node, attributes in found.items():
        if node in graph:
            graph.nodes[node].update(attributes)
    graph.graph["dashboard_texts"] = DASHBOARD_TEXTS
    return graph

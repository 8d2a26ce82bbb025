"""A map's run folder (its file names: :mod:`circuitmap.files.layout`): the config that makes a
folder a map run (written first, read back on --resume), the check that its finished parts
were made with that config, and the graph of a finished one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitmap.config import MapConfig, from_dict, to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import BASELINE_FILE, CONFIG_FILE, GRAPH_FILE, MADE_WITH_FILE
from circuitmap.files.storage import atomic_write_json, check_run_dir, read_json
from circuitmap.graph.export import load_graph

if TYPE_CHECKING:
    import networkx as nx


# Fields that change only what is measured next or exported, never a finished part.
RESULT_ONLY_FIELDS = {"faithfulness", "curve", "node_threshold", "edge_threshold"}


def start_map(config: MapConfig, run_dir: Path) -> None:
    """Write the config of a new map run (the source of truth when it resumes); a folder that
    already has one (another map started it) is a one-line error."""
    try:
        atomic_write_json(run_dir / CONFIG_FILE, {"kind": "map", **to_dict(config)}, new=True)
    except FileExistsError:
        raise CircuitmapError(
            f"run folder {str(run_dir)!r} already holds a map: use --resume to finish it"
        ) from None


def open_map(config: MapConfig, run_dir: Path) -> None:
    """Start ``run_dir`` as a map of ``config`` unless it is one, and check that its finished
    parts were made with ``config`` (:func:`check_made_with`)."""
    if not (run_dir / CONFIG_FILE).exists():
        start_map(config, run_dir)
    check_made_with(config, run_dir)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_made_with(config: MapConfig, run_dir: Path) -> None:
    """Once a map has finished parts (its Mean Vectors and what follows), ``made_with.json``
    records the config they were made with; a config that differs from it in a field that
    shapes them is a one-line error naming the fields. Before any part, it is (re)written."""
    path, current = run_dir / MADE_WITH_FILE, to_dict(config)
    if not path.is_file() or not (run_dir / BASELINE_FILE).is_file():
        atomic_write_json(path, current)
        return
    recorded, now = _flat(read_json(path)), _flat(current)
    differ = sorted(
        key
        for key in recorded.keys() & now.keys()
        if recorded[key] != now[key] and key not in RESULT_ONLY_FIELDS
    )
    if differ:
        changes = "; ".join(f"{k} {recorded[k]!r} -> {now[k]!r}" for k in differ)
        raise CircuitmapError(
            f"{str(run_dir)!r} was mapped with another config than its config.json holds now "
            f"({changes}): put those fields back, or map into a new folder"
        )


def load_map_config(run_dir: Path) -> MapConfig:
    """The config of a saved map run, or a one-line error."""
    data = read_json(check_run_dir(run_dir) / CONFIG_FILE)
    if data.pop("kind", None) != "map":
        raise CircuitmapError(f"{str(run_dir)!r} is not a map run folder")
    data.setdefault("precision", "float32")  # a run from before the option measured in float32
    data.setdefault("rounds", 1)  # and chose its features in one round
    try:
        return from_dict(MapConfig, data)
    except (TypeError, ValueError) as exc:
        raise CircuitmapError(
            f"{str(run_dir)!r} has a config this version cannot read: {exc}"
        ) from None


def load_finished_map(run_dir: Path) -> tuple[MapConfig, nx.DiGraph]:
    """The config and the full graph (graph.json) of a finished map run, or a one-line error."""
    config = load_map_config(run_dir)  # an explain run is told it is not a map
    if not (run_dir / GRAPH_FILE).is_file():
        raise CircuitmapError(
            f"{str(run_dir)!r} has no {GRAPH_FILE}: finish it with `circuitmap map --resume`"
        )
    return config, load_graph(run_dir / GRAPH_FILE)

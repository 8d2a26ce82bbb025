"""The run-folder layout of a map: where each target's results go, the config that makes a
folder a map run (written first, read back on --resume), and the graph of a finished one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuitmap.config import MapConfig, from_dict, to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.export import GRAPH_FILE, load_graph
from circuitmap.files.storage import CONFIG_FILE, atomic_write_json, check_run_dir, read_json

if TYPE_CHECKING:
    import networkx as nx

    from circuitmap.config import Target

TARGETS_DIR = "targets"
LAYERS_DIR = "layers"


def target_dir(run_dir: Path, target: Target) -> Path:
    return run_dir / TARGETS_DIR / target.id


def start_map(config: MapConfig, run_dir: Path) -> None:
    """Write the config of a new map run (the source of truth when it resumes)."""
    atomic_write_json(run_dir / CONFIG_FILE, {"kind": "map", **to_dict(config)})


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

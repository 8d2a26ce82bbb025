"""The run-folder layout of a map: where each target's results go, and the config that makes
a folder a map run (written first, read back on --resume)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuitmap.config import MapConfig, from_dict, to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import CONFIG_FILE, atomic_write_json, check_run_dir, read_json

if TYPE_CHECKING:
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
    try:
        return from_dict(MapConfig, data)
    except (TypeError, ValueError) as exc:
        raise CircuitmapError(
            f"{str(run_dir)!r} has a config this version cannot read: {exc}"
        ) from None

"""What a map's run folder already holds: each saved result read back (a damaged file is a
one-line error naming it), and how many units of work are left (see :mod:`.driver`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from circuitmap.circuit.effects import LayerEffects
from circuitmap.circuit.faithfulness import Faithfulness
from circuitmap.circuit.prompts import PromptSplit
from circuitmap.circuit.selection import Selection
from circuitmap.circuit.sweep import TargetSweep
from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import (
    BASELINE_FILE,
    BASELINE_INFO_FILE,
    FAITHFULNESS_FILE,
    LAYERS_DIR,
    PROMPTS_FILE,
    SELECTION_FILE,
    SWEEP_FILE,
    target_dir,
)
from circuitmap.files.storage import (
    atomic_write_json,
    read_json,
    reading,
)
from circuitmap.files.tensors import atomic_save_tensors, read_tensors
from circuitmap.method.baseline import Baseline

if TYPE_CHECKING:
    from circuitmap.config import MapConfig, Target

# One unit of work of the embedded model's default map on 2 CPU cores
# (benchmarks/results/map_vs_report.md), the pace a map's time estimate assumes.
UNIT_SECONDS = 5.0


def done_effects(run_dir: Path, target: Target) -> dict[int, LayerEffects]:
    """The layers of ``target`` whose ablation effects are already in ``run_dir``."""
    found = sorted((target_dir(run_dir, target) / LAYERS_DIR).glob("layer_*.json"))
    effects = {}
    for path in found:
        with reading(path):
            done = LayerEffects.load(path)
        effects[done.layer] = done
    return effects


def load_baseline(run_dir: Path, layers: list[int]) -> Baseline | None:
    """The run's saved Mean Vectors, or None before they are computed."""
    path = run_dir / BASELINE_FILE
    if not path.exists():
        return None
    tensors, info = read_tensors(path), read_json(run_dir / BASELINE_INFO_FILE)
    with reading(path):
        means = {layer: tensors[f"mean_{layer}"] for layer in layers}
        vectors = {layer: tensors[f"vectors_{layer}"] for layer in layers}
    with reading(run_dir / BASELINE_INFO_FILE):
        return Baseline(
            means=means,
            norm_ranges={int(k): tuple(v) for k, v in info["norm_ranges"].items()},
            vectors=vectors,
            target_max=None,
            n_texts=info["n_texts"],
        )


def save_baseline(run_dir: Path, base: Baseline) -> None:
    atomic_save_tensors(
        run_dir / BASELINE_FILE,
        {f"mean_{k}": v for k, v in base.means.items()}
        | {f"vectors_{k}": v for k, v in base.vectors.items()},
    )
    atomic_write_json(
        run_dir / BASELINE_INFO_FILE, {"norm_ranges": base.norm_ranges, "n_texts": base.n_texts}
    )


def saved_prompts(config: MapConfig, run_dir: Path) -> dict[str, PromptSplit]:
    """The prompts of the targets that have them in ``run_dir``."""
    chosen = {}
    for t in config.targets:
        path = target_dir(run_dir, t) / PROMPTS_FILE
        if path.exists():
            data = read_json(path)
            if "effect" not in data:
                raise CircuitmapError(
                    f"{path} has no effect prompts (only build and held-out ones), and a map "
                    "measures its nodes on effect prompts: map into a new folder"
                )
            with reading(path):
                chosen[t.id] = PromptSplit.from_dict(data)
    return chosen


def check_saved(config: MapConfig, run_dir: Path) -> None:
    """Read every result a run folder holds, as a resumed map will: a damaged file is a
    one-line error naming it, before any work (a resume relies on all of them)."""
    load_baseline(run_dir, config.all_layers())
    saved_prompts(config, run_dir)
    Done.read(config, run_dir)


@dataclass
class Done:
    """What a run folder already holds, by target id, and what arrives while it maps."""

    sweeps: dict[str, TargetSweep]
    selections: dict[str, Selection]
    faithfulness: dict[str, Faithfulness]
    effects: dict[str, dict[int, LayerEffects]]

    @classmethod
    def read(cls, config: MapConfig, run_dir: Path) -> Done:
        done = cls({}, {}, {}, {})
        for t in config.targets:
            folder = target_dir(run_dir, t)
            if (folder / SWEEP_FILE).exists():
                with reading(folder / SWEEP_FILE):
                    done.sweeps[t.id] = TargetSweep.load(folder)
            if (folder / SELECTION_FILE).exists():
                with reading(folder / SELECTION_FILE):
                    done.selections[t.id] = Selection.load(folder)
            if (folder / FAITHFULNESS_FILE).exists():
                with reading(folder / FAITHFULNESS_FILE):
                    measured = Faithfulness.load(folder)
                if measured.has_curve or not config.curve:  # else measured again, with it
                    done.faithfulness[t.id] = measured
            done.effects[t.id] = done_effects(run_dir, t)
        return done

    def units_left(self, config: MapConfig) -> int:
        """Per target: its sweep, selection, layers and faithfulness still to do."""
        return sum(
            (t.id not in self.sweeps)
            + (t.id not in self.selections)
            + len(config.upstream_layers(t))
            - len(self.effects[t.id])
            + (config.faithfulness and t.id not in self.faithfulness)
            for t in config.targets
        )


def units_left(config: MapConfig, run_dir: Path | None = None) -> int:
    """The units of work (see the module docstring: sweeps, selections, layers, faithfulness)
    a new map has to do, or what is left of the map in ``run_dir``."""
    if run_dir is None:
        return Done({}, {}, {}, {t.id: {} for t in config.targets}).units_left(config)
    return Done.read(config, run_dir).units_left(config)

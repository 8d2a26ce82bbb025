"""The search driver: maps every upstream layer of each target into a run folder, unit by unit,
so an interrupted map resumes where it stopped.

Units of work (see :mod:`circuitmap.circuit.worker`), in dependency order:
1. the Mean Vectors of every mapped layer (shared by all targets), once per run;
2. each target's real prompts (one pass over the prompt pool for all targets);
3. per target, the sweep: gradient ascent, Patchscope and SAE features at all upstream layers
   in one batch;
4. per target, the selection of each layer's circuit features (attribution on the build
   prompts, or the report's top features of X_l);
5. per (target, layer), the ablation effects of the layer's nodes and its edges into the next
   mapped layer; they need only the selection, so they are independent of each other;
6. per target, its faithfulness on the held-out prompts (also needs only the selection).
Each result is written atomically (JSON last, as the completion marker) as soon as it arrives,
whether from this process or from a Ray worker.

Run folder::

    config.json                      the MapConfig (the source of truth on --resume)
    baseline.safetensors/.json       Mean Vectors and norm ranges of every mapped layer
    targets/L{L}.N{n}/prompts.json   build, held-out and silent prompts (texts, tokens, peaks)
    targets/L{L}.N{n}/sweep.*        X_l, trajectories, decodes, features of every layer
    targets/L{L}.N{n}/selection.json each layer's ranked features and how many are kept
    targets/L{L}.N{n}/layers/layer_{l:02d}.json   ablation effects of layer l's nodes and edges
    targets/L{L}.N{n}/faithfulness.json           the circuit on the held-out prompts
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitmap.circuit.effects import LayerEffects
from circuitmap.circuit.executors import Call, Executor
from circuitmap.circuit.faithfulness import FAITHFULNESS_FILE, Faithfulness
from circuitmap.circuit.prompts import PromptSplit
from circuitmap.circuit.selection import SELECTION_FILE, Selection
from circuitmap.circuit.sweep import TargetSweep
from circuitmap.circuit.worker import Worker
from circuitmap.config import MapConfig, Target, from_dict, to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import (
    CONFIG_FILE,
    atomic_save_tensors,
    atomic_write_json,
    check_run_dir,
    read_json,
    read_tensors,
)
from circuitmap.method.baseline import Baseline
from circuitmap.model.load import check_target, model_shape
from circuitmap.progress import progress

Log = Callable[[str], None]
TARGETS_DIR = "targets"
LAYERS_DIR = "layers"


@dataclass
class TargetResult:
    """Everything mapped for one target."""

    sweep: TargetSweep
    prompts: PromptSplit
    selection: Selection
    effects: dict[int, LayerEffects]  # upstream layer -> its ablation effects
    faithfulness: Faithfulness | None  # None: not measured (config.faithfulness off)


def target_dir(run_dir: Path, target: Target) -> Path:
    return run_dir / TARGETS_DIR / target.id


def done_effects(run_dir: Path, target: Target) -> dict[int, LayerEffects]:
    """The layers of ``target`` whose ablation effects are already in ``run_dir``."""
    found = sorted((target_dir(run_dir, target) / LAYERS_DIR).glob("layer_*.json"))
    return {e.layer: e for e in map(LayerEffects.load, found)}


def load_baseline(run_dir: Path, layers: list[int]) -> Baseline | None:
    """The run's saved Mean Vectors, or None before they are computed."""
    path = run_dir / "baseline.safetensors"
    if not path.exists():
        return None
    tensors, info = read_tensors(path), read_json(run_dir / "baseline.json")
    return Baseline(
        means={layer: tensors[f"mean_{layer}"] for layer in layers},
        norm_ranges={int(k): tuple(v) for k, v in info["norm_ranges"].items()},
        vectors={layer: tensors[f"vectors_{layer}"] for layer in layers},
        target_max=None,
        n_texts=info["n_texts"],
    )


def save_baseline(run_dir: Path, base: Baseline) -> None:
    atomic_save_tensors(
        run_dir / "baseline.safetensors",
        {f"mean_{k}": v for k, v in base.means.items()}
        | {f"vectors_{k}": v for k, v in base.vectors.items()},
    )
    atomic_write_json(
        run_dir / "baseline.json", {"norm_ranges": base.norm_ranges, "n_texts": base.n_texts}
    )


def run_baseline(config: MapConfig, run_dir: Path, executor: Executor) -> Baseline:
    """The Mean Vectors of all mapped layers: computed once per run, then read back."""
    base = load_baseline(run_dir, config.all_layers())
    if base is None:
        base = executor.call(Worker.baseline)
        save_baseline(run_dir, base)
    return base


def _prompts(config: MapConfig, run_dir: Path, executor: Executor) -> dict[str, PromptSplit]:
    """Each target's prompts, chosen once (for all targets still lacking them) and kept."""
    chosen = {}
    for t in config.targets:
        path = target_dir(run_dir, t) / "prompts.json"
        if path.exists():
            chosen[t.id] = PromptSplit.from_dict(read_json(path))
    missing = [t for t in config.targets if t.id not in chosen]
    if missing:
        found = executor.call(Worker.prompts, missing)
        for t in missing:
            chosen[t.id] = found[t.id]
            atomic_write_json(target_dir(run_dir, t) / "prompts.json", found[t.id].to_dict())
    return chosen


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


def check_targets(config: MapConfig, shape: tuple[int, int]) -> None:
    """One-line errors for targets or layers outside a model of ``shape`` (decoder layers,
    MLP width), and for a target left with no layer to map."""
    if not config.targets:
        raise CircuitmapError("a map needs at least one target")
    deepest = max(t.layer for t in config.targets)
    for t in config.targets:
        check_target(shape, t, [])
    check_target(shape, Target(deepest, 0), config.layers or [])
    for t in config.targets:
        if not config.upstream_layers(t):
            raise CircuitmapError(
                f"no layer to map below target {t.id}: the layers must include one of "
                f"0..{t.layer - 1}"
            )


def map_circuit(
    config: MapConfig,
    run_dir: Path,
    executor: Executor,
    log: Log = print,
) -> dict[str, TargetResult]:
    """Map every unit not yet done in ``run_dir``; returns every target's results by id."""
    check_targets(config, model_shape(config.model))
    if not (run_dir / CONFIG_FILE).exists():
        start_map(config, run_dir)
    sweeps: dict[str, TargetSweep] = {}
    selections: dict[str, Selection] = {}
    faithfulness: dict[str, Faithfulness] = {}
    effects: dict[str, dict[int, LayerEffects]] = {}
    for t in config.targets:
        folder = target_dir(run_dir, t)
        if (folder / "sweep.json").exists():
            sweeps[t.id] = TargetSweep.load(folder)
        if (folder / SELECTION_FILE).exists():
            selections[t.id] = Selection.load(folder)
        if (folder / FAITHFULNESS_FILE).exists():
            faithfulness[t.id] = Faithfulness.load(folder)
        effects[t.id] = done_effects(run_dir, t)
    if sweeps:
        done = sum(map(len, effects.values()))
        total = sum(len(config.upstream_layers(t)) for t in config.targets)
        log(
            f"resuming: {len(sweeps)} of {len(config.targets)} target sweeps and {done} of "
            f"{total} layers done"
        )
    baseline = executor.share(run_baseline(config, run_dir, executor))
    prompts = _prompts(config, run_dir, executor)

    def after_selection(selection: Selection) -> list[Call]:
        t = selection.target
        calls = [
            Call(Worker.effects, (selection, sweeps[t.id], layer, prompts[t.id], baseline))
            for layer in reversed(config.upstream_layers(t))
            if layer not in effects[t.id]
        ]
        if config.faithfulness and t.id not in faithfulness:
            calls.append(Call(Worker.faithfulness, (selection, prompts[t.id], baseline)))
        return calls

    def after_sweep(sweep: TargetSweep) -> list[Call]:
        t = sweep.target
        if t.id in selections:
            return after_selection(selections[t.id])
        return [Call(Worker.select, (sweep, prompts[t.id], baseline))]

    def follow(call: Call, result: Any) -> list[Call]:
        if isinstance(result, TargetSweep):
            t = result.target
            result.save(target_dir(run_dir, t))
            sweeps[t.id] = result
            log(
                f"{t.id}: swept {len(result.layers)} layers in {result.seconds:.1f} s; "
                + "; ".join(
                    f"L{s.layer} {s.final_activation:.2f} {s.contrastive_text[:40]!r}"
                    for s in result.layers.values()
                )
            )
            return after_sweep(result)
        if isinstance(result, Selection):
            t = result.target
            result.save(target_dir(run_dir, t))
            selections[t.id] = result
            kept = ", ".join(f"L{s.layer} {s.kept}" for s in result.layers.values())
            log(f"{t.id}: features kept per layer ({result.method}): {kept}")
            return after_selection(result)
        t = call.args[0].target
        if isinstance(result, Faithfulness):
            result.save(target_dir(run_dir, t))
            faithfulness[t.id] = result
            log(f"{t.id}: faithfulness measured in {result.seconds:.1f} s")
            return []
        result.save(target_dir(run_dir, t) / LAYERS_DIR)
        effects[t.id][result.layer] = result
        log(
            f"{t.id} layer {result.layer}: {len(result.nodes) - 1} features and the error node "
            f"measured in {result.seconds:.1f} s"
        )
        return []

    calls = []
    for t in config.targets:
        if t.id in sweeps:
            calls += after_sweep(sweeps[t.id])
        else:
            calls.append(Call(Worker.sweep, (t, baseline)))
    units = sum(  # per target: sweep, selection, layers and faithfulness still to do
        (t.id not in sweeps)
        + (t.id not in selections)
        + len(config.upstream_layers(t))
        - len(effects[t.id])
        + (config.faithfulness and t.id not in faithfulness)
        for t in config.targets
    )
    with progress(units, "mapping") as bar:

        def advance(call: Call, result: Any) -> list[Call]:
            more = follow(call, result)
            bar.update(1)
            return more

        executor.run(calls, advance)
    return {
        t.id: TargetResult(
            sweeps[t.id], prompts[t.id], selections[t.id], effects[t.id], faithfulness.get(t.id)
        )
        for t in config.targets
    }

"""The search driver: maps every upstream layer of each target into a run folder, unit by unit,
so an interrupted map resumes where it stopped.

Units of work (see :mod:`circuitmap.mapping.worker`), in dependency order:
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

The run folder's files: :mod:`circuitmap.files.layout`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitmap.circuit.faithfulness import Faithfulness
from circuitmap.circuit.prompts import POSITION_EFFECT, PromptSplit, check_fires
from circuitmap.circuit.selection import Selection
from circuitmap.circuit.sweep import TargetSweep
from circuitmap.config import Target
from circuitmap.errors import CircuitmapError
from circuitmap.files.layout import LAYERS_DIR, PROMPTS_FILE, target_dir
from circuitmap.files.storage import atomic_write_json
from circuitmap.graph.build import TargetResult
from circuitmap.mapping.folder import open_map
from circuitmap.mapping.saved import Done, load_baseline, save_baseline, saved_prompts
from circuitmap.mapping.worker import Call, Worker
from circuitmap.model.load import check_target, model_shape
from circuitmap.progress import progress

if TYPE_CHECKING:
    from circuitmap.config import MapConfig
    from circuitmap.mapping.executors import Executor
    from circuitmap.method.baseline import Baseline

Log = Callable[[str], None]


def run_baseline(config: MapConfig, run_dir: Path, executor: Executor) -> Baseline:
    """The Mean Vectors of all mapped layers: computed once per run, then read back."""
    base = load_baseline(run_dir, config.all_layers())
    if base is None:
        base = executor.call(Worker.baseline)
        save_baseline(run_dir, base)
    return base


def _prompts(config: MapConfig, run_dir: Path, executor: Executor) -> dict[str, PromptSplit]:
    """Each target's prompts, chosen once (for all targets still lacking them) and kept; a
    target that does not fire on them stops the map (a one-line error)."""
    chosen = saved_prompts(config, run_dir)
    missing = [t for t in config.targets if t.id not in chosen]
    if missing:
        found = executor.call(Worker.prompts, missing)
        for t in missing:
            chosen[t.id] = found[t.id]
            atomic_write_json(target_dir(run_dir, t) / PROMPTS_FILE, found[t.id].to_dict())
    for t in config.targets:
        check_fires(t, chosen[t.id])
    return chosen


def position_notes(config: MapConfig, prompts: dict[str, PromptSplit]) -> list[str]:
    """One line per target whose strongest texts mostly peak at their first tokens."""
    return [
        f"{t.id}: {early:.0%} of the texts where it fires most peak within their first "
        f"{config.min_context} tokens, a position effect; its prompts end at peaks with at least "
        f"{config.min_context} tokens of context (--min-context)"
        for t in config.targets
        if (early := prompts[t.id].early_peaks) is not None and early >= POSITION_EFFECT
    ]


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
        outside = sorted(set(config.sites or []) - set(config.upstream_layers(t)))
        if outside:
            raise CircuitmapError(
                f"sites {outside} are not mapped layers of target {t.id}: use layers of "
                f"{config.upstream_layers(t)}"
            )


class _Plan:
    """Which units follow a finished one; each result is saved as it arrives."""

    def __init__(
        self,
        config: MapConfig,
        run_dir: Path,
        done: Done,
        prompts: dict[str, PromptSplit],
        baseline: Any,
        log: Log,
    ) -> None:
        self.config, self.run_dir, self.done, self.log = config, run_dir, done, log
        self.prompts, self.baseline = prompts, baseline

    def first(self) -> list[Call]:
        calls = []
        for t in self.config.targets:
            if t.id in self.done.sweeps:
                calls += self.after_sweep(self.done.sweeps[t.id])
            else:
                calls.append(Call(Worker.sweep, (t, self.baseline, self.prompts[t.id])))
        return calls

    def after_sweep(self, sweep: TargetSweep) -> list[Call]:
        t = sweep.target
        if t.id in self.done.selections:
            return self.after_selection(self.done.selections[t.id])
        return [Call(Worker.select, (sweep, self.prompts[t.id], self.baseline))]

    def after_selection(self, selection: Selection) -> list[Call]:
        t, done = selection.target, self.done
        split = self.prompts[t.id]
        calls = [
            Call(Worker.effects, (selection, done.sweeps[t.id], layer, split, self.baseline))
            for layer in reversed(self.config.upstream_layers(t))
            if layer not in done.effects[t.id]
        ]
        if self.config.faithfulness and t.id not in done.faithfulness:
            calls.append(Call(Worker.faithfulness, (selection, split, self.baseline)))
        return calls

    def follow(self, call: Call, result: Any) -> list[Call]:
        """Save ``result`` of ``call``, note it, and return the calls it releases."""
        done, log = self.done, self.log
        t = result.target if isinstance(result, TargetSweep | Selection) else call.args[0].target
        folder = target_dir(self.run_dir, t)
        if isinstance(result, TargetSweep):
            result.save(folder)
            done.sweeps[t.id] = result
            decodes = "; ".join(
                f"L{s.layer} {s.final_activation:.2f} {s.contrastive_text[:40]!r}"
                for s in result.layers.values()
            )
            log(f"{t.id}: swept {len(result.layers)} layers in {result.seconds:.1f} s; {decodes}")
            return self.after_sweep(result)
        if isinstance(result, Selection):
            result.save(folder)
            done.selections[t.id] = result
            kept = ", ".join(f"L{s.layer} {s.kept}" for s in result.layers.values())
            log(f"{t.id}: features kept per layer ({result.method}): {kept}")
            return self.after_selection(result)
        if isinstance(result, Faithfulness):
            result.save(folder)
            done.faithfulness[t.id] = result
            log(f"{t.id}: faithfulness measured in {result.seconds:.1f} s")
            return []
        result.save(folder / LAYERS_DIR)
        done.effects[t.id][result.layer] = result
        log(
            f"{t.id} layer {result.layer}: {len(result.nodes) - 1} features and the error node "
            f"measured in {result.seconds:.1f} s"
        )
        return []


def map_circuit(
    config: MapConfig,
    run_dir: Path,
    executor: Executor,
    log: Log = print,
) -> dict[str, TargetResult]:
    """Map every unit not yet done in ``run_dir``; returns every target's results by id."""
    check_targets(config, model_shape(config.model))
    open_map(config, run_dir)
    done = Done.read(config, run_dir)
    if done.sweeps:
        finished = sum(map(len, done.effects.values()))
        total = sum(len(config.upstream_layers(t)) for t in config.targets)
        log(
            f"resuming: {len(done.sweeps)} of {len(config.targets)} target sweeps and "
            f"{finished} of {total} layers done"
        )
    baseline = executor.share(run_baseline(config, run_dir, executor))
    prompts = _prompts(config, run_dir, executor)
    for line in position_notes(config, prompts):
        log(line)
    plan = _Plan(config, run_dir, done, prompts, baseline, log)
    with progress(done.units_left(config), "mapping") as bar:

        def advance(call: Call, result: Any) -> list[Call]:
            more = plan.follow(call, result)
            bar.update(1)
            return more

        executor.run(plan.first(), advance)
    return {
        t.id: TargetResult(
            done.sweeps[t.id],
            prompts[t.id],
            done.selections[t.id],
            done.effects[t.id],
            done.faithfulness.get(t.id),
        )
        for t in config.targets
    }

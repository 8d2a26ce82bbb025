"""The units of work of a map, run on one copy of the model.

A local map calls one :class:`Worker` in-process; ``--executor ray`` makes one Ray actor per GPU
(or CPU slot) of the same class, so both run exactly the same code on the same inputs. A worker
loads the model and SAEs once, on first use, and keeps each target's encoded prompts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circuitmap.circuit.dashboards import TEXTS as DASHBOARD_TEXTS
from circuitmap.circuit.dashboards import node_dashboards
from circuitmap.circuit.decompose import ablation_reference, decompose
from circuitmap.circuit.effects import layer_effects
from circuitmap.circuit.faithfulness import measure
from circuitmap.circuit.prompt_run import prompt_run
from circuitmap.circuit.prompts import top_prompts
from circuitmap.circuit.selection import select_circuit
from circuitmap.circuit.sweep import sweep_target
from circuitmap.circuit.x_check import circuit_decodes
from circuitmap.files.corpus import corpus_texts
from circuitmap.files.prompt_sets import read_prompt_set
from circuitmap.method.baseline import compute_baseline
from circuitmap.model.forward import matmul_precision
from circuitmap.model.load import cache_root, load_model
from circuitmap.sae.store import SAEStore

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.effects import LayerEffects
    from circuitmap.circuit.faithfulness import Faithfulness
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.prompts import PromptSplit
    from circuitmap.circuit.selection import Selection
    from circuitmap.circuit.sweep import TargetSweep
    from circuitmap.config import MapConfig, Target
    from circuitmap.method.baseline import Baseline
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE


@dataclass
class Call:
    """One unit of work: ``unit(worker, *args)``, ``unit`` a :class:`Worker` method named by
    reference (``Call(Worker.sweep, (target, baseline, split))``)."""

    unit: Callable[..., Any]
    args: tuple[Any, ...]


Follow = Callable[[Call, Any], list[Call]]  # a finished call and its result -> new calls


def _measuring(unit: Callable[..., Any]) -> Callable[..., Any]:
    """A unit of the circuit's measurements: its forwards run at the map's ``precision``
    (the Mean Vectors and the sweep, the report's method, run in the model's own dtype)."""

    @functools.wraps(unit)
    def measured(self: Worker, *args: Any) -> Any:
        with matmul_precision(self.lm.input_device, self.config.precision):
            return unit(self, *args)

    return measured


class Worker:
    """Holds the model and SAEs of one map; each method is one unit of work."""

    def __init__(self, config: MapConfig, lm: LoadedModel | None = None) -> None:
        self.config = config
        self._lm = lm
        self._saes: SAEStore | None = None
        # Per target id: its prompts encoded once (by part), and its layers' decompositions.
        self._runs: dict[tuple[str, str], PromptRun] = {}
        self._decompositions: dict[str, dict[int, LayerDecomposition]] = {}
        self.cache = cache_root(config.model.cache_dir)

    def run(self, unit: Callable[..., Any], *args: Any) -> Any:
        """``unit(self, *args)``: how an executor calls a unit of work given by reference."""
        return unit(self, *args)

    @property
    def lm(self) -> LoadedModel:
        if self._lm is None:
            self._lm = load_model(self.config.model)
        return self._lm

    def saes(self, layers: list[int]) -> dict[int, LayerSAE]:
        if self._saes is None:
            self._saes = SAEStore.for_model(self.lm, self.config.sae, self.config.model.cache_dir)
        return self._saes.layers(layers)

    def baseline(self) -> Baseline:
        """The Mean Vectors of every mapped layer of every target, in one pass."""
        c = self.config
        texts = corpus_texts(c.corpus, self.cache)
        return compute_baseline(
            self.lm,
            texts,
            c.all_layers(),
            max_tokens=c.corpus.max_tokens,
            batch_size=c.corpus.batch_size,
        )

    @_measuring
    def prompts(self, targets: list[Target]) -> dict[str, PromptSplit]:
        """Each target's build, held-out and silent prompts, in one pass over the pool."""
        c = self.config
        pool = corpus_texts(c.corpus, self.cache, n=c.prompt_pool)
        return top_prompts(
            self.lm,
            pool,
            targets,
            n=c.n_prompts,
            n_effect=c.effect_prompts,
            n_heldout=c.n_heldout,
            n_silent=c.n_silent,
            prompt_set=read_prompt_set(c.prompts) if c.prompts else None,
            max_tokens=c.prompt_tokens,
            min_context=c.min_context,
        )

    def sweep(self, target: Target, baseline: Baseline, split: PromptSplit) -> TargetSweep:
        layers = self.config.upstream_layers(target)
        saes = self.saes(layers)
        return sweep_target(self.lm, self.config, target, baseline, saes, split.corpus_max)

    @_measuring
    def encoded_prompts(self, target: Target, split: PromptSplit, part: str) -> PromptRun:
        """The ``build``, ``effect`` or ``heldout`` prompts of ``target``, run once with
        gradients."""
        key = (target.id, part)
        if key not in self._runs:
            layers = self.config.upstream_layers(target)
            prompts = getattr(split, part)
            self._runs[key] = prompt_run(self.lm, prompts, layers, target)
        return self._runs[key]

    @_measuring
    def decompositions(
        self, target: Target, split: PromptSplit, baseline: Baseline
    ) -> dict[int, LayerDecomposition]:
        """Each mapped layer's SAE decomposition, with the map's reference for "removed"."""
        if target.id not in self._decompositions:
            layers = self.config.upstream_layers(target)
            ablation = self.config.ablation
            reference = ablation_reference(self.lm, ablation, split.silent, baseline, layers)
            self._decompositions[target.id] = {
                layer: decompose(layer, s.sae, reference[layer], ablation)
                for layer, s in self.saes(layers).items()
            }
        return self._decompositions[target.id]

    def select(self, sweep: TargetSweep, split: PromptSplit, baseline: Baseline) -> Selection:
        """The circuit's features, then the decode of each layer's circuit features (in the
        model's own dtype, as X's decode)."""
        t = sweep.target
        run = self.encoded_prompts(t, split, "build")
        decompositions = self.decompositions(t, split, baseline)
        with matmul_precision(self.lm.input_device, self.config.precision):
            selection = select_circuit(self.lm, self.config, sweep, run, decompositions)
        kept = {layer: s.features for layer, s in selection.layers.items()}
        decodes = circuit_decodes(
            self.lm, self.config.patchscope, baseline.means, kept, decompositions, run
        )
        for layer, text in decodes.items():
            selection.layers[layer].circuit_decode = text
        return selection

    @_measuring
    def effects(
        self,
        selection: Selection,
        sweep: TargetSweep,
        layer: int,
        split: PromptSplit,
        baseline: Baseline,
    ) -> LayerEffects:
        t = selection.target
        return layer_effects(
            self.lm,
            self.config,
            selection,
            sweep,
            layer,
            self.encoded_prompts(t, split, "effect"),
            self.decompositions(t, split, baseline),
        )

    @_measuring
    def dashboards(self, selection: Selection, split: PromptSplit) -> dict[str, Any]:
        """The dashboards of ``selection``'s target and kept features."""
        kept = {layer: s.features for layer, s in selection.layers.items() if s.features}
        texts = corpus_texts(self.config.corpus, self.cache, n=DASHBOARD_TEXTS)
        saes = self.saes(list(kept))
        return node_dashboards(self.lm, saes, selection.target, kept, texts, split.build)

    @_measuring
    def faithfulness(
        self, selection: Selection, split: PromptSplit, baseline: Baseline
    ) -> Faithfulness:
        t = selection.target
        decompositions = self.decompositions(t, split, baseline)
        heldout = self.encoded_prompts(t, split, "heldout")
        return measure(
            self.lm, selection, heldout, decompositions, self.config.budget, curve=self.config.curve
        )

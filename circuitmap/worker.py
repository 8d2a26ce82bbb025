"""The units of work of a map, run on one copy of the model.

A local map calls one :class:`Worker` in-process; ``--executor ray`` makes one Ray actor per GPU
(or CPU slot) of the same class, so both run exactly the same code on the same inputs. A worker
loads the model and SAEs once, on first use, and keeps each target's encoded prompts.
"""

from __future__ import annotations

from .baseline import Baseline, compute_baseline
from .config import MapConfig, Target
from .corpus import corpus_texts
from .effects import LayerEffects, PromptRun, layer_effects, prompt_run
from .model import LoadedModel, cache_root, load_model
from .prompts import Prompts, top_prompts
from .sae_store import LayerSAE, load_layer_sae
from .sweep import TargetSweep, sweep_target


class Worker:
    """Holds the model and SAEs of one map; each method is one unit of work."""

    def __init__(self, config: MapConfig, lm: LoadedModel | None = None) -> None:
        self.config = config
        self._lm = lm
        self._saes: dict[int, LayerSAE] = {}
        self._runs: dict[str, PromptRun] = {}  # target id -> its prompts, encoded once
        self.cache = cache_root(config.model.cache_dir)

    @property
    def lm(self) -> LoadedModel:
        if self._lm is None:
            self._lm = load_model(self.config.model)
        return self._lm

    def saes(self, layers: list[int]) -> dict[int, LayerSAE]:
        for layer in layers:
            if layer not in self._saes:
                self._saes[layer] = load_layer_sae(
                    layer, self.lm.d_model, self.cache, self.lm.model_id, self.config.sae
                )
        return {layer: self._saes[layer] for layer in layers}

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

    def prompts(self, targets: list[Target]) -> dict[str, Prompts]:
        """Each target's prompts, chosen in one pass over the prompt pool."""
        c = self.config
        pool = corpus_texts(c.corpus, self.cache, n=c.prompt_pool)
        return top_prompts(self.lm, pool, targets, n=c.n_prompts, max_tokens=c.prompt_tokens)

    def sweep(self, target: Target, baseline: Baseline) -> TargetSweep:
        layers = self.config.upstream_layers(target)
        return sweep_target(self.lm, self.config, target, baseline, self.saes(layers))

    def effects(
        self, sweep: TargetSweep, layer: int, prompts: Prompts, baseline: Baseline
    ) -> LayerEffects:
        target = sweep.target
        layers = self.config.upstream_layers(target)
        if target.id not in self._runs:
            self._runs[target.id] = prompt_run(self.lm, prompts, layers)
        return layer_effects(
            self.lm, self.config, sweep, layer, self._runs[target.id], self.saes(layers), baseline
        )

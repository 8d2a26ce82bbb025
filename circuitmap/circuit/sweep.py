"""The gradient Patchscope swept over every upstream layer of one target at once.

All upstream layers (and, with restarts, all their starts) are rows of one batched Adam
optimisation, each row injecting at its own layer; then every layer's X is decoded in one batched
contrastive Patchscope and encoded with its layer's SAE. The result is what the ablation step of
each layer needs: X_l and its top features.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.config import Target
from circuitmap.files.layout import SWEEP_FILE, SWEEP_TENSORS_FILE
from circuitmap.files.storage import atomic_write_json, read_json
from circuitmap.files.tensors import atomic_save_tensors, read_tensors
from circuitmap.method.optimise import injected_activation, optimise_rows
from circuitmap.method.patchscope import patchscope_rows
from circuitmap.method.restarts import added_codes, compare_starts, restart_starts
from circuitmap.method.x_space import LayerSpace
from circuitmap.sae.features import FeatureReport, feature_report

if TYPE_CHECKING:
    from circuitmap.config import MapConfig
    from circuitmap.method.baseline import Baseline
    from circuitmap.model.load import LoadedModel
    from circuitmap.sae.store import LayerSAE


@dataclass
class LayerSearch:
    """The gradient Patchscope and SAE step at one upstream layer."""

    layer: int
    mean_activation: float | None  # with the Mean Vector injected as it is (None: not measured)
    final_activation: float  # with the optimised X
    trajectory: list[float]  # target activation before each Adam step
    contrastive_text: str
    plain_text: str
    features: FeatureReport
    # With config.restarts: reference top-k feature -> share of restarts that found it.
    restart_agreement: dict[int, float] | None = None
    corpus_max: float | None = None  # the target's largest activation on the prompt pool
    # Restarts (None without): share whose top-1 added feature is X's; top-k Jaccard with X's.
    top1_agreement: float | None = None
    jaccard: float | None = None
    consensus: list[int] = field(default_factory=list)  # added by at least half of the starts

    @property
    def level(self) -> float | None:
        """The activation X reaches as a multiple of the corpus maximum (None: not defined)."""
        if self.corpus_max is None or self.corpus_max <= 0:
            return None
        return self.final_activation / self.corpus_max


@dataclass
class TargetSweep:
    """Every upstream layer of one target."""

    target: Target
    layers: dict[int, LayerSearch]
    vectors: dict[int, torch.Tensor]  # layer -> (d_model,) optimised X
    seconds: float

    def save(self, folder: Path) -> None:
        """Tensors first, JSON last: the JSON file marks the sweep as done."""
        atomic_save_tensors(
            folder / SWEEP_TENSORS_FILE, {str(k): v for k, v in self.vectors.items()}
        )
        atomic_write_json(
            folder / SWEEP_FILE,
            {
                "target": dataclasses.asdict(self.target),
                "seconds": self.seconds,
                "layers": [dataclasses.asdict(s) for s in self.layers.values()],
            },
        )

    @classmethod
    def load(cls, folder: Path) -> TargetSweep:
        data = read_json(folder / SWEEP_FILE)
        layers = {}
        for item in data["layers"]:
            item["features"] = FeatureReport.from_dict(item["features"])
            if item["restart_agreement"] is not None:  # JSON keys are strings
                item["restart_agreement"] = {
                    int(k): v for k, v in item["restart_agreement"].items()
                }
            layers[item["layer"]] = LayerSearch(**item)
        vectors = {int(k): v for k, v in read_tensors(folder / SWEEP_TENSORS_FILE).items()}
        return cls(Target(**data["target"]), layers, vectors, data["seconds"])


def sweep_target(
    lm: LoadedModel,
    config: MapConfig,
    target: Target,
    baseline: Baseline,
    saes: dict[int, LayerSAE],
    corpus_max: float | None,
) -> TargetSweep:
    """Optimise, decode and SAE-encode X at every upstream layer of ``target`` in one batch, from
    each layer's start and ``config.restarts`` corpus vectors; ``corpus_max`` is the target's
    largest activation on the prompt pool (X's bound: :class:`~circuitmap.config.OptimConfig`)."""
    start = time.perf_counter()
    layers = config.upstream_layers(target)
    optim = config.optim
    starts = 1 + config.restarts  # per layer: optim.init's start, then corpus restarts
    inits = torch.cat(
        [
            restart_starts(baseline.means[layer], baseline.vectors[layer], optim, config.restarts)
            for layer in layers
        ]
    )  # (layers * starts, d_model)
    per_layer = [
        LayerSpace(
            layer,
            baseline.means[layer],
            baseline.norm_ranges[layer] if optim.norm_constraint else None,
            saes[layer].sae,
        )
        for layer in layers
    ]
    spaces = [space for space in per_layer for _ in range(starts)]  # a group of rows a layer
    ascent = optimise_rows(
        lm, target=target, spaces=spaces, inits=inits, config=optim, corpus_max=corpus_max
    )
    main = torch.arange(len(layers)) * starts  # each layer's first row: the map's X
    xs = ascent.vectors[main]  # (layers, d_model)
    means = torch.stack([baseline.means[layer] for layer in layers])  # (layers, d_model)
    at_mean = injected_activation(lm, target, layers, means, optim.dummy_prompt)  # (layers,)
    scopes = patchscope_rows(lm, layers=layers, signals=xs, noises=means, config=config.patchscope)
    results = {}
    for i, layer in enumerate(layers):
        block = slice(i * starts, (i + 1) * starts)
        codes = None if ascent.codes is None else ascent.codes[block]
        added = added_codes(saes[layer], ascent.vectors[block], codes, inits[block])
        restarts = compare_starts(layer, added, ascent.final[block], config.top_k)
        trajectory = ascent.trajectories[:, main[i]].tolist()
        results[layer] = LayerSearch(
            layer=layer,
            mean_activation=at_mean[i].item(),
            final_activation=ascent.final[main[i]].item(),
            trajectory=trajectory,
            contrastive_text=scopes[i].contrastive_text,
            plain_text=scopes[i].plain_text,
            features=feature_report(
                saes[layer],
                xs[i],
                means[i],
                k=config.top_k,
                code=None if codes is None else codes[0],
            ),
            restart_agreement=restarts.agreement if config.restarts else None,
            corpus_max=corpus_max,
            top1_agreement=restarts.top1_agreement,
            jaccard=restarts.jaccard,
            consensus=restarts.consensus if config.restarts else [],
        )
    return TargetSweep(
        target,
        results,
        {layer: xs[i] for i, layer in enumerate(layers)},
        time.perf_counter() - start,
    )

"""The gradient Patchscope swept over every upstream layer of one target at once.

All upstream layers (and, with restarts, all random starts) are rows of one batched Adam
optimisation, each row injecting at its own layer; then every layer's X is decoded in one batched
contrastive Patchscope and encoded with its layer's SAE. The result is what the ablation step of
each layer needs: X_l and its top features.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.config import Target
from circuitmap.files.layout import SWEEP_FILE, SWEEP_TENSORS_FILE
from circuitmap.files.storage import atomic_write_json, read_json
from circuitmap.files.tensors import atomic_save_tensors, read_tensors
from circuitmap.method.optimise import optimise_rows, step_size
from circuitmap.method.patchscope import patchscope_rows
from circuitmap.method.restarts import compare_starts, restart_starts
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
    mean_activation: float | None  # target activation with the Mean Vector (None: random init)
    final_activation: float  # with the optimised X
    trajectory: list[float]  # target activation before each Adam step
    contrastive_text: str
    plain_text: str
    features: FeatureReport
    # With config.restarts: reference top-k feature -> fraction of random restarts that found it.
    restart_agreement: dict[int, float] | None = None


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
) -> TargetSweep:
    """Optimise, decode and SAE-encode X at every upstream layer of ``target`` in one batch."""
    start = time.perf_counter()
    layers = config.upstream_layers(target)
    starts = 1 + config.restarts  # per layer: config.init's start, then random restarts
    inits = torch.cat(
        [restart_starts(baseline.means[layer], config.optim, config.restarts) for layer in layers]
    )  # (layers * starts, d_model)
    rows = [layer for layer in layers for _ in range(starts)]
    vectors, trajectories, final = optimise_rows(
        lm,
        layers=rows,
        target=target,
        inits=inits,
        lrs=[step_size(config.optim, baseline.means[layer]) for layer in rows],
        steps=config.optim.steps,
        dummy_prompt=config.optim.dummy_prompt,
        norm_ranges=[baseline.norm_ranges[layer] for layer in rows]
        if config.optim.norm_constraint
        else None,
    )
    main = torch.arange(len(layers)) * starts  # each layer's first row: the map's X
    xs = vectors[main]  # (layers, d_model)
    means = torch.stack([baseline.means[layer] for layer in layers])  # (layers, d_model)
    scopes = patchscope_rows(lm, layers=layers, signals=xs, noises=means, config=config.patchscope)
    results = {}
    for i, layer in enumerate(layers):
        agreement = None
        if config.restarts:
            block = slice(i * starts, (i + 1) * starts)
            agreement = compare_starts(
                saes[layer], vectors[block], final[block], config.top_k
            ).agreement
        trajectory = trajectories[:, main[i]].tolist()
        results[layer] = LayerSearch(
            layer=layer,
            mean_activation=trajectory[0] if config.optim.init == "mean" else None,
            final_activation=final[main[i]].item(),
            trajectory=trajectory,
            contrastive_text=scopes[i].contrastive_text,
            plain_text=scopes[i].plain_text,
            features=feature_report(saes[layer], xs[i], means[i], k=config.top_k),
            restart_agreement=agreement,
        )
    return TargetSweep(
        target,
        results,
        {layer: xs[i] for i, layer in enumerate(layers)},
        time.perf_counter() - start,
    )

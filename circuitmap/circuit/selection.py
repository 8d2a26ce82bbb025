"""Which features of each layer make up a target's circuit.

``select="attribution"`` (the default) ranks a layer's features by their attribution on the
build prompts and keeps them until they carry ``share`` of the layer's positive attribution, at
most ``max_features``, in ``rounds`` rounds, each ranked given the features already kept (see
:func:`circuitmap.circuit.attribution.choose`); each kept feature's agreement is how often a
bootstrap resample of the build prompts keeps it too, within its round.
``select="activation"`` is the report's choice: the ``top_k`` features the optimisation added
most to X_l over the Mean Vector (agreement: the restarts, when the map ran them).

Either way the target's whole circuit is then chosen jointly over its sites
(:func:`circuitmap.circuit.whole_choice.choose_whole`), and each site's layer keeps the whole
circuit's features too, so every node of the circuit is measured and drawn.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.circuit.attribution import attribution, choose
from circuitmap.circuit.contexts import Context, feature_contexts
from circuitmap.circuit.whole import WholeCircuit
from circuitmap.circuit.whole_choice import choose_sites, choose_whole, site_options
from circuitmap.circuit.x_check import check_x
from circuitmap.config import SelectMethod, Target
from circuitmap.files.layout import SELECTION_FILE
from circuitmap.files.storage import atomic_write_json, read_json

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.sweep import TargetSweep
    from circuitmap.config import MapConfig
    from circuitmap.model.load import LoadedModel


@dataclass
class LayerSelection:
    """One layer's ranking and how much of it the circuit keeps."""

    layer: int
    ranked: list[int]  # up to max_features features, best first by the selection's score
    kept: int  # the circuit keeps ranked[:kept]
    attribution: list[float]  # each ranked feature's attribution / the clean target
    error_attribution: float  # the error term's attribution / the clean target
    activation: list[float]  # each ranked feature's activation on the optimised X_l
    agreement: list[float | None]  # per kept feature: bootstrap, or restarts (None: not run)
    contexts: list[list[Context]]  # per kept feature: where it fires most on the build prompts
    # The report's question (circuit.x_check): X's top added features, their attribution ranks,
    # their overlap with the top of ``ranked``, and the decode of the circuit's own features.
    x_features: list[int] = field(default_factory=list)
    x_ranks: list[int] = field(default_factory=list)
    x_overlap: float | None = None
    circuit_decode: str | None = None

    @property
    def features(self) -> list[int]:
        return self.ranked[: self.kept]


@dataclass
class Selection:
    """A target's circuit features at every mapped layer."""

    target: Target
    method: SelectMethod
    clean: float  # the mean clean target activation on the build prompts
    layers: dict[int, LayerSelection]
    seconds: float
    circuit: WholeCircuit | None = None  # the whole circuit over its sites

    def save(self, folder: Path) -> None:
        atomic_write_json(folder / SELECTION_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, folder: Path) -> Selection:
        data = read_json(folder / SELECTION_FILE)
        layers = {}
        for k, v in data.pop("layers").items():
            v["contexts"] = [[Context(**c) for c in row] for row in v["contexts"]]
            layers[int(k)] = LayerSelection(**v)
        circuit = data.pop("circuit", None)
        return cls(
            target=Target(**data.pop("target")),
            layers=layers,
            circuit=WholeCircuit.from_dict(circuit) if circuit else None,
            **data,
        )


def select_circuit(
    lm: LoadedModel,
    config: MapConfig,
    sweep: TargetSweep,
    run: PromptRun,
    decompositions: dict[int, LayerDecomposition],
) -> Selection:
    """Rank and keep each mapped layer's features (see the module docstring)."""
    start = time.perf_counter()
    clean = run.target.mean().item()
    scale = clean if clean > 0 else 1.0
    target = sweep.target
    layers = {}
    for layer, dec in sorted(decompositions.items()):
        on_x = dec.encode(sweep.vectors[layer][None])[0][0]  # (d_sae,)
        if config.select == "attribution":
            choice = choose(
                lm,
                dec,
                run,
                target,
                rounds=config.rounds,
                ig_steps=config.ig_steps,
                share=config.share,
                cap=config.max_features,
                resamples=config.resamples,
            )
            ranked, kept, scores = choice.ranked, choice.kept, choice.scores
            agreement: list[float | None] = list(choice.agreement)
            error = choice.error
        else:  # the report's top-k of X_l (what the optimisation added), clean attribution
            top = [f.index for f in sweep.layers[layer].features.added]  # the sweep's report
            rest = [f for f in on_x.argsort(descending=True).tolist() if f not in top]
            ranked = (top + rest)[: config.max_features]
            kept = min(len(top), len(ranked))
            restart = sweep.layers[layer].restart_agreement or {}
            agreement = [restart.get(f) for f in ranked[:kept]]
            per_prompt, error_per_prompt = attribution(dec, run)  # (n, d_sae), (n,)
            scores = per_prompt.mean(0)[torch.tensor(ranked, dtype=torch.long)].tolist()
            error = error_per_prompt.mean().item()
        layers[layer] = LayerSelection(
            layer=layer,
            ranked=ranked,
            kept=kept,
            attribution=[score / scale for score in scores],
            error_attribution=error / scale,
            activation=on_x[torch.tensor(ranked, dtype=torch.long)].tolist(),
            contexts=[],
            agreement=agreement,
        )
    options = site_options(config, target)
    sites = choose_sites(lm, decompositions, run, target, options, config.budget)
    circuit = choose_whole(lm, decompositions, run, target, sites, config.budget)
    for layer, dec in sorted(decompositions.items()):
        chosen = layers[layer]
        scores = attribution(dec, run)[0].mean(0)  # (d_sae,) clean attribution on the build
        _add_features(chosen, circuit.features.get(layer, []), scores, dec, sweep, scale)
        chosen.contexts = feature_contexts(lm, dec, run, chosen.features)
        x = check_x(sweep.layers[layer], scores)
        chosen.x_features, chosen.x_ranks, chosen.x_overlap = x.features, x.ranks, x.overlap
    return Selection(
        sweep.target, config.select, clean, layers, time.perf_counter() - start, circuit
    )


def _add_features(
    chosen: LayerSelection,
    features: list[int],
    scores: torch.Tensor,
    dec: LayerDecomposition,
    sweep: TargetSweep,
    scale: float,
) -> None:
    """The layer keeps ``features`` too: those it did not keep join its kept ones (their clean
    attribution ``scores`` (d_sae,), activation on X_l, no agreement measured)."""
    extra = [f for f in features if f not in chosen.features]
    if not extra:
        return
    on_x = dec.encode(sweep.vectors[dec.layer][None])[0][0]  # (d_sae,)
    rest = [i for i, f in enumerate(chosen.ranked) if i >= chosen.kept and f not in extra]
    head = list(range(chosen.kept))
    chosen.ranked = [chosen.ranked[i] for i in head] + extra + [chosen.ranked[i] for i in rest]
    index = torch.tensor(extra, dtype=torch.long)
    chosen.attribution = (
        [chosen.attribution[i] for i in head]
        + (scores[index] / scale).tolist()
        + [chosen.attribution[i] for i in rest]
    )
    chosen.activation = (
        [chosen.activation[i] for i in head]
        + on_x[index].tolist()
        + [chosen.activation[i] for i in rest]
    )
    chosen.agreement = chosen.agreement[: chosen.kept] + [None] * len(extra)
    chosen.kept += len(extra)

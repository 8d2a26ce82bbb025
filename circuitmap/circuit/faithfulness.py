"""How well a circuit explains its target, on held-out prompts that never chose or weighed it.

After Marks et al., *Sparse Feature Circuits*. At resid_pre of a mapped layer, every real token
is edited (BOS and padding untouched); a = the target's largest activation over a prompt's
tokens (each held-out prompt is cut right after it), averaged over prompts; "removed" = replaced
by the reference (by default the mean over tokens of texts where the target is silent; see
:mod:`circuitmap.circuit.decompose`). With C the layer's circuit features:

- D = a_clean - a[every feature and the error term removed];
- completeness = (a_clean - a[C removed]) / D;
- sufficiency = (a[all but C removed] - a[every feature removed]) / (a_clean - a[every feature
  removed]), with the error term kept in all three; ``sufficiency_no_error``: the same with the
  error term removed in all three (the denominator is then D);
- error share = (a_clean - a[error term removed]) / D;
- the same for as many random active features (the floor), for the top-k features at several
  k (the curve), and, jointly over all mapped layers edited at once, the circuit's sufficiency.
A ratio is undefined (None) unless a_clean is above 0 and its denominator above 1% of a_clean
(a denominator near zero or of the wrong sign gives no share). These per-layer figures are
diagnostics: the headline is the whole circuit's (:mod:`circuitmap.circuit.whole`), which edits
all of its sites in one forward.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.circuit.decompose import removal_forward, removal_masks
from circuitmap.circuit.whole import active, masked_target, masks_of, ratio
from circuitmap.circuit.whole_faithfulness import WholeFaithfulness, measure_whole
from circuitmap.files.layout import FAITHFULNESS_FILE
from circuitmap.files.storage import atomic_write_json, read_json

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.selection import Selection
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel

CURVE = (5, 10, 20, 40)  # features kept per layer on the completeness/sufficiency curve


@dataclass
class LayerFaithfulness:
    layer: int
    features: int  # |C|
    completeness: float | None
    sufficiency: float | None  # error term kept
    sufficiency_no_error: float | None
    error_share: float | None
    random_completeness: float | None
    random_sufficiency: float | None
    curve: dict[str, dict[str, float | None]]  # "k" -> completeness, sufficiency ({}: not run)


@dataclass
class Faithfulness:
    """A target's circuit measured on its held-out prompts."""

    n_prompts: int
    clean: float  # a_clean
    layers: dict[int, LayerFaithfulness]
    joint_sufficiency: float | None  # every mapped layer edited at once, error terms kept
    joint_random_sufficiency: float | None
    seconds: float
    whole: WholeFaithfulness | None = None  # the whole circuit (the headline figures)

    def mean(self, name: str) -> float | None:
        """The mean of a per-layer figure over the layers where it is defined."""
        return defined_mean([getattr(f, name) for f in self.layers.values()])

    def curve_mean(self, k: int, name: str) -> float | None:
        """The mean over layers of the curve's ``name`` (completeness or sufficiency) at ``k``
        features, where it is measured and defined."""
        return defined_mean(
            [x.curve[str(k)][name] for x in self.layers.values() if str(k) in x.curve]
        )

    @property
    def has_curve(self) -> bool:
        return any(layer.curve for layer in self.layers.values())

    def summary(self) -> dict[str, float | int | None]:
        """The figures a graph carries: the whole circuit's, per-layer means, and the joint
        sufficiency of the per-layer circuits."""
        names = ("completeness", "sufficiency", "sufficiency_no_error", "error_share")
        whole = self.whole
        circuit = {
            f"circuit_{name}": getattr(whole, name) if whole else None
            for name in ("circuit", "no_error", "complement", "random", "area")
        }
        circuit |= {
            "circuit_feature_nodes": whole.feature_nodes if whole else None,
            "circuit_error_nodes": whole.error_nodes if whole else None,
        }
        return (
            circuit
            | {name: self.mean(name) for name in names}
            | {
                "random_completeness": self.mean("random_completeness"),
                "random_sufficiency": self.mean("random_sufficiency"),
                "joint_sufficiency": self.joint_sufficiency,
                "joint_random_sufficiency": self.joint_random_sufficiency,
                "heldout_prompts": self.n_prompts,
            }
        )

    def save(self, folder: Path) -> None:
        atomic_write_json(folder / FAITHFULNESS_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, folder: Path) -> Faithfulness:
        data = read_json(folder / FAITHFULNESS_FILE)
        data["layers"] = {int(k): LayerFaithfulness(**v) for k, v in data["layers"].items()}
        whole = data.pop("whole", None)
        return cls(**data, whole=WholeFaithfulness(**whole) if whole else None)


def defined_mean(values: list[float | None]) -> float | None:
    """The mean of the values that are defined (not None); None when none is."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def random_features(active: torch.Tensor, exclude: list[int], count: int, seed: int) -> list[int]:
    """``count`` random features among the ``active`` (d_sae,) bool ones, not in ``exclude``."""
    pool = active.clone()
    pool[exclude] = False
    candidates = pool.nonzero()[:, 0]
    gen = torch.Generator().manual_seed(seed)
    return candidates[torch.randperm(len(candidates), generator=gen)[:count]].tolist()


@torch.no_grad()
def layer_faithfulness(
    lm: LoadedModel,
    dec: LayerDecomposition,
    run: PromptRun,
    target: Target,
    kept: list[int],
    ranked: list[int],
    random: list[int],
    curve: bool = True,
) -> LayerFaithfulness:
    """The figures of one layer (see the module docstring) in one batched forward; the curve
    (8 more removals) only with ``curve``."""
    d_sae = dec.directions.shape[0]
    every = list(range(d_sae))
    curve_ks = [k for k in CURVE if k <= len(ranked)] if curve else []

    def but(features: list[int]) -> list[int]:
        chosen = set(features)
        return [f for f in every if f not in chosen]

    conditions: dict[str, tuple[list[int], bool]] = {
        "clean": ([], False),
        "C": (kept, False),
        "but_C": (but(kept), False),
        "but_C_err": (but(kept), True),
        "all": (every, False),
        "all_err": (every, True),
        "err": ([], True),
        "R": (random, False),
        "but_R": (but(random), False),
    }
    for k in curve_ks:
        conditions[f"top{k}"] = (ranked[:k], False)
        conditions[f"but_top{k}"] = (but(ranked[:k]), False)
    groups, errors = zip(*conditions.values(), strict=True)
    removed, error = removal_masks(d_sae, list(groups), list(errors))
    measured, _ = removal_forward(lm, dec, run, removed, error, target, [])  # (C, n)
    a = dict(zip(conditions, measured.mean(1).tolist(), strict=True))
    c = a["clean"]
    d_all = c - a["all_err"]
    d_kept_error = c - a["all"]

    def completeness(name: str) -> float | None:
        return ratio(c - a[name], d_all, c)

    def sufficiency(name: str) -> float | None:
        return ratio(a[name] - a["all"], d_kept_error, c)

    return LayerFaithfulness(
        layer=dec.layer,
        features=len(kept),
        completeness=completeness("C"),
        sufficiency=sufficiency("but_C"),
        sufficiency_no_error=ratio(a["but_C_err"] - a["all_err"], d_all, c),
        error_share=completeness("err"),
        random_completeness=completeness("R"),
        random_sufficiency=sufficiency("but_R"),
        curve={
            str(k): {
                "completeness": completeness(f"top{k}"),
                "sufficiency": sufficiency(f"but_top{k}"),
            }
            for k in curve_ks
        },
    )


@torch.no_grad()
def measure(
    lm: LoadedModel,
    selection: Selection,
    run: PromptRun,
    decompositions: dict[int, LayerDecomposition],
    budget: int,
    seed: int = 0,
    curve: bool = True,
) -> Faithfulness:
    """Every figure of the module docstring for ``selection`` on the held-out ``run`` (the
    curve only with ``curve``), and the whole circuit's (:func:`measure_whole`)."""
    start = time.perf_counter()
    target = selection.target
    layers, randoms = {}, {}
    for layer, dec in sorted(decompositions.items()):
        chosen = selection.layers[layer]
        fires = active(dec, run)  # (d_sae,)
        randoms[layer] = random_features(fires, chosen.ranked, chosen.kept, seed + layer)
        layers[layer] = layer_faithfulness(
            lm, dec, run, target, chosen.features, chosen.ranked, randoms[layer], curve
        )
    errors = {layer: True for layer in decompositions}
    every: dict[int, list[int] | None] = {layer: None for layer in decompositions}
    keep: list[tuple[dict[int, list[int] | None], dict[int, bool]]] = [
        (every, errors),
        ({layer: s.features for layer, s in selection.layers.items()}, errors),
        (dict(randoms), errors),
        ({layer: [] for layer in decompositions}, errors),
    ]
    joint = masked_target(lm, decompositions, run, target, masks_of(decompositions, keep))
    clean, circuit, rand, nothing = joint.mean(1).tolist()
    whole = selection.circuit
    return Faithfulness(
        n_prompts=len(run.input_ids),
        clean=clean,
        layers=layers,
        joint_sufficiency=ratio(circuit - nothing, clean - nothing, clean),
        joint_random_sufficiency=ratio(rand - nothing, clean - nothing, clean),
        seconds=time.perf_counter() - start,
        whole=measure_whole(lm, decompositions, run, target, whole, budget, seed)
        if whole
        else None,
    )

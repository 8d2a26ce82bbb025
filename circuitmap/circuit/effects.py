"""Real ablation effects at one mapped layer of a target: the circuit's nodes and edges.

Each kept feature of layer l, and the layer's SAE error term (the error node), is removed
(replaced by its reference value, see :mod:`circuitmap.circuit.decompose`) at every real token
of the effect prompts (a part of the pool that chose nothing), one batched forward for all of
them, started from the prompts' recorded clean resid_pre at l. The forward measures:
- the node's **influence**: the target's drop, relative to its clean value (its total effect);
- **edges** into the next mapped layer m (every later mapped layer with ``skip_edges``; from a
  site of the whole circuit also into its next site, or the target from its last site): how
  much of the target flows through each kept feature j of m (and m's error node), read as the
  change of j's attribution ``sum_t f_j,t (u_j . g_m,t)`` (clean gradient at m), relative to the
  clean target; from the last mapped layer the edge goes to the target itself (its influence);
- control features removed the same way: a pool matched to activation levels spread over the
  kept features', of which each node is compared with the ``MATCHED`` closest to its own
  level, for a p-value of its influence (corrected over the map's nodes when the graph is
  built: Benjamini-Hochberg q-values);
- on the optimised X_l: the target's drop when each node, or all kept features, are removed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.circuit.decompose import removal_forward, removal_masks
from circuitmap.files.layout import layer_file
from circuitmap.files.storage import atomic_write_json, read_json
from circuitmap.graph.nodes import ERROR
from circuitmap.method.ablation import (
    ablation_forward,
    control_features,
    matched_controls,
    necessity,
    spread_levels,
)

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.circuit.selection import Selection
    from circuitmap.circuit.sweep import TargetSweep
    from circuitmap.config import MapConfig
    from circuitmap.model.load import LoadedModel

MATCHED = 3  # controls of the pool each node is compared with: the closest in activation level


@dataclass
class NodeEffect:
    """Removing one node (a kept feature, or the error term) of the layer."""

    feature: int  # SAE feature index, or ERROR
    effect: float  # mean drop of the target over the effect prompts
    influence: float | None  # that drop / the clean target (None: the target is silent)
    vector_effect: float  # the target's drop on the optimised X_l
    vector_relative: float | None  # / the target on X_l (None: X_l does not make it fire)
    control_mean: float | None = None  # controls' mean drop on the prompts
    p_value: float | None = None  # paired sign-flip test against the controls, over prompts
    effect_size: float | None = None  # in control standard deviations
    ci_low: float | None = None  # bootstrap 95% interval of the drop over prompts
    ci_high: float | None = None


@dataclass
class EdgeEffect:
    """Removing ``source`` of this layer changes how much of the target flows through
    ``dest`` of ``later_layer`` (ERROR: the error nodes)."""

    source: int
    later_layer: int
    dest: int
    effect: float  # in target units, mean over prompts
    relative: float | None  # / the clean target (None: the target is silent)


@dataclass
class LayerEffects:
    layer: int
    clean: float  # mean clean target over the effect prompts
    nodes: list[NodeEffect]
    edges: list[EdgeEffect]
    to_target: bool  # whether this layer's nodes have edges to the target
    all_removed: dict[str, float | None]  # every kept feature removed at once: on X and on prompts
    controls: list[int]
    seconds: float

    def save(self, folder: Path) -> None:
        atomic_write_json(layer_file(folder, self.layer), dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> LayerEffects:
        data = read_json(path)
        data["nodes"] = [NodeEffect(**n) for n in data["nodes"]]
        data["edges"] = [EdgeEffect(**e) for e in data["edges"]]
        return cls(**data)


def _relative(effect: float, scale: float) -> float | None:
    """``effect / scale``; None (not a share of anything) unless the target fires, scale > 0."""
    return effect / scale if scale > 0 else None


@torch.no_grad()
def _on_vector(
    lm: LoadedModel,
    config: MapConfig,
    sweep: TargetSweep,
    dec: LayerDecomposition,
    groups: list[list[int]],
    errors: list[bool],
) -> torch.Tensor:
    """The target (rows,) with X_l, minus each group of ``groups``, at the dummy prompt's last
    position (row 0: nothing removed)."""
    removed, error = removal_masks(dec.directions.shape[0], groups, errors)
    x = sweep.vectors[dec.layer].float()[None, None].expand(len(groups), 1, -1)  # (C, 1, d)
    rows = dec.remove(x, torch.ones(len(groups), 1), removed, error)[:, 0]  # (C, d_model)
    dummy = lm.tokenizer(config.optim.dummy_prompt, return_tensors="pt")["input_ids"]
    ids = dummy.expand(len(groups), -1).to(lm.input_device)
    last = ids.shape[1] - 1

    def put_rows(hidden: torch.Tensor) -> torch.Tensor:  # (C, seq, d_model)
        patched = hidden.clone()
        patched[:, last] = rows.to(hidden.device, hidden.dtype)
        return patched

    target = sweep.target
    return ablation_forward(
        lm,
        ids,
        None,
        layer=dec.layer,
        edit=put_rows,
        target=target,
        read_layers=[],
    ).target


def flow(
    dec: LayerDecomposition, resid: torch.Tensor, run: PromptRun, dest: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """How much of the target flows through features ``dest`` and the error term of ``dec``'s
    layer in each row of ``resid`` (C, n, seq, d_model): (C, n, len(dest)) and (C, n), read with
    the clean gradient at that layer."""
    grad = run.grads[dec.layer]  # (n, seq, d_model)
    real = run.real.float()  # (n, seq)
    f, e = dec.encode(resid)  # (C, n, seq, d_sae), (C, n, seq, d_model)
    along = grad @ dec.directions[dest].T  # (n, seq, len(dest))
    through = (f[..., dest] * along * real[..., None]).sum(-2)  # (C, n, len(dest))
    through_error = ((e * grad).sum(-1) * real).sum(-1)  # (C, n)
    return through, through_error


def _nodes(
    kept: list[int],
    drops: torch.Tensor,
    control_drops: torch.Tensor | None,
    matched: list[list[int]],
    t_x: torch.Tensor,
    clean: float,
) -> list[NodeEffect]:
    """The kept features' and the error node's effects, from the target's ``drops`` (removals,
    n) on the prompts (rows: the kept features, then the error node), the controls' drops
    (controls, n) of which each node is compared with its ``matched`` rows, and the target on
    X_l ``t_x`` (row 0 clean, then the same order)."""
    nodes = []
    for i, feature in enumerate([*kept, ERROR]):
        effect = drops[i].mean().item()
        on_x = (t_x[0] - t_x[i + 1]).item()
        node = NodeEffect(
            feature=feature,
            effect=effect,
            influence=_relative(effect, clean),
            vector_effect=on_x,
            vector_relative=_relative(on_x, t_x[0].item()),
        )
        if control_drops is not None:
            for key, value in necessity(drops[i], control_drops[matched[i]]).items():
                setattr(node, key, value)
        nodes.append(node)
    return nodes


def _edges(
    later: LayerDecomposition,
    dest: list[int],
    kept: list[int],
    states: list[tuple[PromptRun, torch.Tensor]],
    clean: float,
) -> list[EdgeEffect]:
    """Edges from the kept features and the error node into ``dest`` (and the error node) of
    the ``later`` layer, from its resid_pre ``states`` (per group of prompts: the group and
    (C, n_group, seq_group, d_model), row 0 clean, then one row per source)."""
    sources = len(kept) + 1
    lost = []  # per group of prompts: (1 + sources, n_group, dest + 1)
    for part, group in states:
        through, through_error = flow(later, group[: sources + 1], part, dest)
        lost.append(torch.cat([through, through_error[..., None]], -1))
    flows = torch.cat(lost, 1)  # (1 + sources, n, dest + 1)
    change = (flows[0] - flows[1:]).mean(1)  # (sources, dest + 1)
    return [
        EdgeEffect(
            source, later.layer, d, change[i, j].item(), _relative(change[i, j].item(), clean)
        )
        for i, source in enumerate([*kept, ERROR])
        for j, d in enumerate([*dest, ERROR])
    ]


@torch.no_grad()
def layer_effects(
    lm: LoadedModel,
    config: MapConfig,
    selection: Selection,
    sweep: TargetSweep,
    layer: int,
    run: PromptRun,
    decompositions: dict[int, LayerDecomposition],
) -> LayerEffects:
    """Ablation effects of ``layer``'s circuit nodes (see the module docstring)."""
    start = time.perf_counter()
    target = selection.target
    dec = decompositions[layer]
    kept = selection.layers[layer].features
    later = sorted(m for m in selection.layers if m > layer)
    read = later if config.skip_edges else later[:1]
    to_target = config.skip_edges or not later
    circuit = selection.circuit
    if circuit and layer in circuit.sites:  # the whole circuit's edges join its sites
        next_sites = [m for m in circuit.sites if m > layer]
        read = sorted(set(read) | set(next_sites[:1]))
        to_target = to_target or not next_sites
    clean = run.resid[layer]  # (n, seq, d_model)

    # Controls: a pool of features whose activation levels match ``controls`` levels spread
    # over the kept features'; each node is compared with the pool's closest to its own level.
    f_clean, _ = dec.encode(clean)  # (n, seq, d_sae)
    activity = (f_clean * run.real[..., None]).sum((0, 1)) / run.real.sum()  # (d_sae,)
    levels = spread_levels(activity, kept, config.controls)
    controls = [c for row in control_features(activity, levels, 1, exclude=kept) for c in row]

    # Conditions: clean, each kept feature, the error node, all kept features, each control.
    groups = [[], *([f] for f in kept), [], list(kept), *([c] for c in controls)]
    errors = [False] * len(groups)
    errors[len(kept) + 1] = True
    removed, error = removal_masks(dec.directions.shape[0], groups, errors)
    t_p, resid = removal_forward(
        lm, dec, run, removed, error, target, read
    )  # (C, n), later layer -> per group: (group, (C, n_group, seq_group, d_model))
    drops = t_p[0] - t_p[1:]  # (C - 1, n): drop per removal and prompt
    clean_p = t_p[0].mean().item()
    sources = len(kept) + 1  # the kept features and the error node
    control_drops = drops[sources + 1 :]  # (controls, n)

    # On X_l: each node, and all kept features together.
    t_x = _on_vector(lm, config, sweep, dec, groups[: sources + 2], errors[: sources + 2])
    matched = matched_controls(activity, kept, controls, MATCHED)
    matched.append(list(range(len(controls))))  # the error node: every control
    nodes = _nodes(kept, drops, control_drops if controls else None, matched, t_x, clean_p)
    all_x = (t_x[0] - t_x[sources + 1]).item()
    all_p = drops[sources].mean().item()
    all_removed = {
        "vector_effect": all_x,
        "vector_relative": _relative(all_x, t_x[0].item()),
        "prompt_effect": all_p,
        "prompt_relative": _relative(all_p, clean_p),
    }
    edges = []
    for m in read:
        edges += _edges(decompositions[m], selection.layers[m].features, kept, resid[m], clean_p)
    return LayerEffects(
        layer=layer,
        clean=clean_p,
        nodes=nodes,
        edges=edges,
        to_target=to_target,
        all_removed=all_removed,
        controls=controls,
        seconds=time.perf_counter() - start,
    )

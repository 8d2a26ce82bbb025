"""The whole circuit measured on held-out prompts: F(C), F(C) without its error nodes,
F(M minus C), a random floor and the curve of F over the circuit's best features, every site
edited in one forward (see :mod:`circuitmap.circuit.whole` for F and the circuit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from scipy.integrate import trapezoid

from circuitmap.circuit.whole import (
    CURVE,
    POSITIONS,
    WholeCircuit,
    active,
    masked_target,
    masks_of,
    ratio,
)

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel


@dataclass
class WholeFaithfulness:
    """The whole circuit measured on held-out prompts (see the module docstring): F of the
    circuit, of the circuit without its error nodes, of its complement, of random circuits with
    as many features per site (error nodes removed), the curve of F over the circuit's best k
    features (its error nodes kept) and the curve's area (trapezoid over k / budget, from the
    error nodes alone at 0)."""

    sites: list[int]
    feature_nodes: int
    error_nodes: int
    clean: float  # m(M)
    empty: float  # m(empty)
    circuit: float | None  # F(C)
    no_error: float | None  # F(C without its error nodes)
    complement: float | None  # F(M minus C)
    random: float | None  # F(random features, as many per site; no error node)
    curve: dict[str, float | None]  # k -> F(the best k features and C's error nodes)
    area: float | None
    errors_only: float | None = None  # F(C's error nodes alone), which C's features add to
    # position class -> [feature nodes, error nodes] the circuit keeps there
    positions: dict[str, list[int]] | None = None


def random_circuit(
    circuit: WholeCircuit,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    seed: int,
) -> dict[int, dict[str, list[int]]]:
    """As many random active features per site and position class as the circuit keeps there,
    none of the circuit's."""
    chosen: dict[int, dict[str, list[int]]] = {}
    gen = torch.Generator().manual_seed(seed)
    for site in circuit.sites:
        fires = active(decompositions[site], run)
        chosen[site] = {}
        for position in POSITIONS:
            pool = fires.clone()
            pool[circuit.nodes[site][position]] = False
            options = pool.nonzero()[:, 0]
            pick = torch.randperm(len(options), generator=gen)[: len(circuit.nodes[site][position])]
            chosen[site][position] = options[pick].tolist()
    return chosen


@torch.no_grad()
def measure_whole(
    lm: LoadedModel,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    target: Target,
    circuit: WholeCircuit,
    budget: int,
    seed: int = 0,
) -> WholeFaithfulness:
    """Every figure of :class:`WholeFaithfulness` on ``run`` in one batched forward."""
    sites = circuit.sites
    decs = {site: decompositions[site] for site in sites}
    every: dict = {site: None for site in sites}
    none: dict = {site: [] for site in sites}
    all_errors: dict = {site: True for site in sites}
    no_errors: dict = {site: False for site in sites}
    complement: dict = {}
    for site in sites:
        d_sae = decs[site].directions.shape[0]
        complement[site] = {
            p: sorted(set(range(d_sae)) - set(circuit.nodes[site][p])) for p in POSITIONS
        }
    not_errors: dict = {
        site: {p: not kept for p, kept in by.items()} for site, by in circuit.error_at.items()
    }
    kept: dict = dict(circuit.nodes)
    errors: dict = dict(circuit.error_at)
    ks = [k for k in CURVE if k < circuit.feature_nodes]
    conditions: dict[str, tuple[dict, dict]] = {
        "M": (every, all_errors),
        "empty": (none, no_errors),
        "C": (kept, errors),
        "no_error": (kept, no_errors),
        "complement": (complement, not_errors),
        "random": (dict(random_circuit(circuit, decs, run, seed)), no_errors),
        "errors_only": (none, errors),
    } | {f"top{k}": (dict(circuit.top(k)), errors) for k in ks}
    names = list(conditions)
    m = masked_target(lm, decs, run, target, masks_of(decs, list(conditions.values())))
    a = dict(zip(names, m.mean(1).tolist(), strict=True))
    clean, empty = a["M"], a["empty"]

    def f(name: str) -> float | None:
        return ratio(a[name] - empty, clean - empty, clean)

    points = [(0.0, f("errors_only"))] + [(k / budget, f(f"top{k}")) for k in ks]
    points.append((circuit.feature_nodes / budget, f("C")))
    return WholeFaithfulness(
        sites=sites,
        feature_nodes=circuit.feature_nodes,
        error_nodes=circuit.error_nodes,
        clean=clean,
        empty=empty,
        circuit=f("C"),
        no_error=f("no_error"),
        complement=f("complement"),
        random=f("random"),
        errors_only=f("errors_only"),
        curve={str(k): f(f"top{k}") for k in ks} | {str(circuit.feature_nodes): f("C")},
        area=_area(points),
        positions={p: list(circuit.count(p)) for p in POSITIONS},
    )


def _area(points: list[tuple[float, float | None]]) -> float | None:
    """The trapezoid area under (x, y) points over [0, last x], divided by the last x; None
    where a y is undefined or the points span nothing."""
    if any(y is None for _, y in points) or points[-1][0] <= 0:
        return None
    xs, ys = zip(*points, strict=True)
    return float(trapezoid(ys, xs)) / xs[-1]

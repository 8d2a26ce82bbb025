"""Whole-circuit nodes per position class (context / peak) and their learning, on synthetic
objectives (no model): masks by class and token, circuits read back, pruning to a budget."""

import torch

from circuitmap.circuit.whole import POSITIONS, WholeCircuit, by_token, masks_of
from circuitmap.circuit.whole_learn import Objective, hard, prune, straight_through


class _Dec:
    """Just what masks_of reads of a decomposition: its feature directions' count."""

    def __init__(self, d_sae: int) -> None:
        self.directions = torch.zeros(d_sae, 3)


def test_masks_split_nodes_by_position_class_and_place_the_peak_last():
    decs = {1: _Dec(4)}
    keep = [({1: {"context": [0], "peak": None}}, {1: {"context": True, "peak": False}})]
    mask = masks_of(decs, keep)[1]  # (1, 2, 5)
    assert mask[0, 0].tolist() == [1, 0, 0, 0, 1]  # context: feature 0 and the error node
    assert mask[0, 1].tolist() == [1, 1, 1, 1, 0]  # peak: every feature, no error node
    same = masks_of(decs, [({1: [2]}, {1: True})])[1]  # one choice for both classes
    assert torch.equal(same[0, 0], same[0, 1])
    tokens = by_token(mask, seq=3)  # (1, 3, 5)
    assert torch.equal(tokens[0, 0], mask[0, 0]) and torch.equal(tokens[0, 1], mask[0, 0])
    assert torch.equal(tokens[0, 2], mask[0, 1])


def test_a_circuit_without_classes_reads_back_with_its_nodes_at_both():
    old = {
        "sites": [2, 4],
        "features": {"2": [7, 3], "4": []},
        "errors": {"2": True, "4": False},
        "scores": {"2": [0.9, 0.1], "4": []},
        "seconds": 1.0,
    }
    circuit = WholeCircuit.from_dict(old)
    assert circuit.nodes[2] == {"context": [7, 3], "peak": [7, 3]}
    assert circuit.feature_nodes == 4 and circuit.error_nodes == 2
    assert circuit.features == {2: [7, 3], 4: []} and circuit.errors == {2: True, 4: False}
    assert circuit.count("peak") == (2, 1)
    assert sum(len(f) for f in circuit.top(3)[2].values()) == 3


def _objective(n: int = 4) -> Objective:
    """Two sites of 6 features: the target is 3 x (site 0, peak, feature 2) + 2 x (site 1,
    context, feature 5) + 1 x both error nodes of site 1, plus small terms from the rest."""

    def forward(masks: dict[int, torch.Tensor]) -> torch.Tensor:
        a, b = masks[0][0], masks[1][0]  # (2, 7)
        value = 3 * a[1, 2] + 2 * b[0, 5] + b[:, 6].sum() + 0.01 * (a.sum() + b.sum())
        return value.expand(n)

    widths = {0: 6, 1: 6}
    candidates = {site: torch.arange(w) for site, w in widths.items()}
    full = {site: torch.ones(1, 2, w + 1) for site, w in widths.items()}
    clean = forward(full)
    return Objective(forward, clean, widths, candidates, float(clean[0]))


def test_pruning_keeps_the_nodes_that_carry_the_target_within_the_budget():
    objective = _objective()
    kept, effect = prune(objective, budget=2, steps=4)
    features = {(s, POSITIONS[c], int(i)) for s, v in kept.items() for c, i in v[:, :-1].nonzero()}
    assert features == {(0, "peak", 2), (1, "context", 5)}
    assert all(v[:, -1].tolist() == [1.0, 1.0] for v in kept.values())  # error nodes kept
    assert effect[0][1, 2] > effect[0][0, 2]


def test_straight_through_never_exceeds_the_budget_and_keeps_its_best_circuit():
    objective = _objective()
    logits = {site: torch.linspace(1, -1, 14).view(2, 7) for site in (0, 1)}
    kept, _ = straight_through(objective, logits, budget=3, steps=6, lr=0.5)
    assert sum(int(v[:, :-1].sum()) for v in kept.values()) == 3
    start = objective.loss(objective.values(hard(logits, 3)))
    assert objective.loss(objective.values(kept)) <= start

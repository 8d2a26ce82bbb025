"""The whole circuit: nodes at several sites chosen together for the target.

After Marks et al., *Sparse Feature Circuits* (2024), ``ablation.py``: the nodes of a site are
its SAE features and its error term (the error node), each split by position class as
circuit-tracer's graphs are per position (Ameisen et al., *Circuit Tracing*, 2025): a node at
the context (the real tokens before the target's peak) and the same feature at the peak (the
last token) are two nodes. A circuit C keeps some nodes of each site; every other node is
removed (replaced by its reference value, see :mod:`circuitmap.circuit.decompose`) at the
tokens of its class, in one forward that starts at the first site, where each later site reads
the already edited stream. With m(.) the target's mean over prompts at their last token,

    F(C) = (m(C) - m(empty)) / (m(M) - m(empty))

where M keeps every node (the clean model) and the empty circuit removes every node at every
site and position. F(M minus C) (C removed, the rest kept) says what is left without the
circuit. A ratio is undefined (None) unless m(M) is above 0 and its denominator above 1% of
m(M) (see :func:`ratio`); a ratio above 1 is stored as it is.

The circuit is learned for that objective on the build prompts
(:mod:`circuitmap.circuit.whole_learn`), within a budget of feature nodes (of either class;
error nodes on top): attribution pruning from every feature active on the build prompts, at
both classes, down to the budget, each step ranking the kept nodes by the gradient of the
target at the current circuit (Syed et al., *Attribution Patching Outperforms Automated
Circuit Discovery*, 2023); then straight-through steps on the nodes' logits after the learned
masks of "Scaling sparse feature circuit finding to Gemma 9B" (a follow-up of Marks et al.),
whose forward is the circuit of the ``budget`` feature nodes of highest logit (and the error
nodes of positive logit), on the loss ((m(C) - m(M)) / (m(M) - m(empty)))^2, i.e. (1 - F(C))^2
on the build prompts; the circuit kept is the one of lowest loss seen. The sites, unless
given, are the evenly spaced layers whose attribution circuit does best on the build prompts
(:func:`~circuitmap.circuit.whole_choice.choose_sites`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.forward import run_recorded
from circuitmap.model.hooks import edit_resid_pre, start_at

if TYPE_CHECKING:
    from circuitmap.circuit.decompose import LayerDecomposition
    from circuitmap.circuit.prompt_run import PromptRun
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel

CURVE = (5, 10, 20, 40)  # feature nodes of the whole-circuit curve (and the budget itself)
# A node's position class, after circuit-tracer's per-position graphs: the real tokens before
# the target's peak ("context") and the peak, the last token ("peak"). A feature (or a site's
# error term) at the context and at the peak are two nodes, kept or removed apart.
POSITIONS = ("context", "peak")
Masks = dict[int, torch.Tensor]  # site -> (rows, 2, d_sae + 1) kept weights by position class
# (POSITIONS' order); the last column: the error node
Kept = list[int] | None  # a site's kept features at a position class (None: every feature)


@dataclass
class WholeCircuit:
    """A target's circuit over its sites: per site and position class, its kept features best
    first (``nodes``), whether its error node is kept (``error_at``), each kept feature's
    learned logit (``scores``, same order), and its F(C) on the build prompts that chose it
    (``build_fit``; None: not measured, or no ratio), to set beside the held-out figure."""

    sites: list[int]
    nodes: dict[int, dict[str, list[int]]]
    error_at: dict[int, dict[str, bool]]
    scores: dict[int, dict[str, list[float]]]
    seconds: float
    build_fit: float | None = None

    @property
    def features(self) -> dict[int, list[int]]:
        """Each site's features kept at some position class, best first."""
        return {
            site: _unique(f for site_, _, f in self.ranked() if site_ == site)
            for site in self.sites
        }

    @property
    def errors(self) -> dict[int, bool]:
        """Whether each site keeps its error node at some position class."""
        return {site: any(self.error_at[site].values()) for site in self.sites}

    @property
    def feature_nodes(self) -> int:
        return sum(len(f) for by in self.nodes.values() for f in by.values())

    @property
    def error_nodes(self) -> int:
        return sum(sum(by.values()) for by in self.error_at.values())

    def count(self, position: str) -> tuple[int, int]:
        """Feature and error nodes kept at ``position``."""
        features = sum(len(self.nodes[site][position]) for site in self.sites)
        return features, sum(self.error_at[site][position] for site in self.sites)

    def ranked(self) -> list[tuple[int, str, int]]:
        """Every kept feature node as (site, position class, feature), by score, best first."""
        triples = [
            (score, site, position, f)
            for site in self.sites
            for position in POSITIONS
            for f, score in zip(
                self.nodes[site][position], self.scores[site][position], strict=True
            )
        ]
        return [(s, p, f) for _, s, p, f in sorted(triples, key=lambda t: -t[0])]

    def top(self, k: int) -> dict[int, dict[str, Kept]]:
        """The ``k`` best feature nodes of the circuit, by site and position class."""
        chosen: dict[int, dict[str, Kept]] = {s: {p: [] for p in POSITIONS} for s in self.sites}
        for site, position, f in self.ranked()[:k]:
            chosen[site][position].append(f)  # type: ignore[union-attr]
        return chosen

    @classmethod
    def from_dict(cls, data: dict) -> WholeCircuit:
        """Read back :func:`dataclasses.asdict`'s output; a circuit without position classes
        keeps each of its nodes at both."""
        if "nodes" not in data:
            both = {
                k: {s: {p: v for p in POSITIONS} for s, v in data[k].items()}
                for k in ("features", "errors", "scores")
            }
            data = {
                "sites": data["sites"],
                "nodes": both["features"],
                "error_at": both["errors"],
                "scores": both["scores"],
                "seconds": data["seconds"],
            }
        keyed = {
            k: {int(s): v for s, v in data[k].items()} for k in ("nodes", "error_at", "scores")
        }
        return cls(data["sites"], **keyed, seconds=data["seconds"], build_fit=data.get("build_fit"))


def _unique(items) -> list[int]:
    seen: dict[int, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def ratio(numerator: float, denominator: float, scale: float) -> float | None:
    """``numerator / denominator``, or None unless ``scale`` (the clean target) > 0 and the
    denominator > 1% of it: a denominator near zero or of the wrong sign gives no share."""
    return numerator / denominator if scale > 0 and denominator > 0.01 * scale else None


Site = Kept | dict[str, Kept]  # a site's kept features: the same at both classes, or by class
Errors = bool | dict[str, bool]  # a site's error node kept: at both classes, or by class


def masks_of(
    decompositions: dict[int, LayerDecomposition],
    keep: Sequence[tuple[Mapping[int, Site], Mapping[int, Errors]]],
) -> Masks:
    """Kept-weight masks, one row per entry of ``keep``: (features kept per site, error node
    kept per site), each the same at both position classes or given by class."""
    masks = {}
    for site, dec in decompositions.items():
        d_sae = dec.directions.shape[0]
        rows = torch.zeros(len(keep), len(POSITIONS), d_sae + 1)
        for row, (features, errors) in enumerate(keep):
            for c, position in enumerate(POSITIONS):
                chosen, error = _at(features[site], position), _at(errors[site], position)
                if chosen is None:
                    rows[row, c, :d_sae] = 1.0
                else:
                    rows[row, c, chosen] = 1.0
                rows[row, c, d_sae] = float(error)
        masks[site] = rows
    return masks


def _at(value, position: str):
    return value[position] if isinstance(value, dict) else value


def masked_target(
    lm: LoadedModel,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    target: Target,
    masks: Masks,
) -> torch.Tensor:
    """The target at each prompt's last token (rows, n) with every site of ``masks`` edited at
    once, row r keeping its nodes by ``masks[site][r]`` (see :data:`Masks`), one forward per
    group of prompts of similar length started at the first site; differentiable in the masks
    where gradients are enabled."""
    rows = len(next(iter(masks.values())))
    parts = [
        (index, _group(lm, decompositions, part, target, masks))
        for index, part in run.chunks(rows=rows)
    ]
    columns = torch.cat([index for index, _ in parts])
    values = torch.cat([v for _, v in parts], 1)  # (rows, n) in the groups' order
    return values[:, columns.argsort()]


def _group(
    lm: LoadedModel,
    decompositions: dict[int, LayerDecomposition],
    run: PromptRun,
    target: Target,
    masks: Masks,
) -> torch.Tensor:
    """:func:`masked_target` on one group of prompts: (rows, n)."""
    sites = sorted(masks)
    n = len(run.input_ids)
    rows = len(masks[sites[0]])
    real = run.real.repeat(rows, 1)  # (rows * n, seq)
    edits = [start_at(lm.model, sites[0], run.resid[sites[0]].repeat(rows, 1, 1))]
    for site in sites:
        dec = decompositions[site]
        kept = by_token(masks[site], run.real.shape[1]).repeat_interleave(n, 0)

        def edit(hidden: torch.Tensor, dec=dec, kept=kept) -> torch.Tensor:
            edited = dec.remove(hidden.cpu(), real, 1 - kept[..., :-1], 1 - kept[..., -1])
            return edited.to(hidden.device, hidden.dtype)

        edits.append(edit_resid_pre(lm.model, site, edit))
    ids, attn = run.input_ids.repeat(rows, 1), run.attention_mask.repeat(rows, 1)
    out = run_recorded(lm.model, ids, attn, mlp=[target.layer], edits=edits, last_only=True)
    return out.target(target).cpu().view(rows, n)


def by_token(mask: torch.Tensor, seq: int) -> torch.Tensor:
    """A site's mask (rows, 2, width) by token: (rows, seq, width), the peak's row at the last
    column (left-padded prompts end at their peak) and the context's elsewhere."""
    peak = torch.arange(seq) == seq - 1
    return torch.where(peak[None, :, None], mask[:, 1:2], mask[:, 0:1])


def active(dec: LayerDecomposition, run: PromptRun) -> torch.Tensor:
    """(d_sae,) bool: the features of ``dec``'s layer active at some real token of ``run``."""
    f, _ = dec.encode(run.resid[dec.layer])  # (n, seq, d_sae)
    return (f * run.real[..., None]).amax((0, 1)) > 0


def nothing(sites: list[int]) -> tuple[dict[int, Site], dict[int, Errors]]:
    """The empty circuit: every feature and error node removed at every site."""
    return {site: [] for site in sites}, {site: False for site in sites}

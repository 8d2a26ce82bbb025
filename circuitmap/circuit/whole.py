"""The whole circuit: nodes at several sites chosen together for the target.

After Marks et al., *Sparse Feature Circuits* (2024), ``ablation.py``: the nodes of a site are
its SAE features and its error term (the error node). A circuit C keeps some nodes of each site;
every other node is removed (replaced by its reference value, see
:mod:`circuitmap.circuit.decompose`) at every real token, in one forward that starts at the
first site, where each later site reads the already edited stream. With m(.) the target's mean
over prompts at their last token,

    F(C) = (m(C) - m(empty)) / (m(M) - m(empty))

where M keeps every node (the clean model) and the empty circuit removes every node at every
site. F(M minus C) (C removed, the rest kept) says what is left without the circuit. A ratio
is undefined (None) unless m(M) is above 0 and its denominator above 1% of m(M) (see
:func:`ratio`); a ratio above 1 is stored as it is.

The circuit is learned for that objective on the build prompts, after the learned masks of
"Scaling sparse feature circuit finding to Gemma 9B" (a follow-up of Marks et al.): every
candidate node has a logit, and each of ``MASK_STEPS`` Adam steps runs the circuit of the
``budget`` features of highest logit over all sites (and the error nodes of positive logit) in
one forward and backward, with straight-through gradients (the sigmoid's) for the logits, on
the loss mean over prompts of ((m_p(C) - m_p(M)) / (m(M) - m(empty)))^2. The circuit kept is
the one of lowest loss seen. Candidates are each site's ``CANDIDATES`` active features of
highest attribution, ranked by it at the start (the first step is the attribution circuit
with the budget shared equally); error nodes start kept and do not count against the budget.
The sites, unless given, are the evenly spaced layers whose attribution circuit does best on
the build prompts (:func:`~circuitmap.circuit.whole_choice.choose_sites`).
"""

from __future__ import annotations

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
Masks = dict[int, torch.Tensor]  # site -> (rows, d_sae + 1) kept weights; the last: error node


@dataclass
class WholeCircuit:
    """A target's circuit over its sites: each site's kept features, best first, whether its
    error node is kept, and each kept feature's learned logit (``scores``, same order)."""

    sites: list[int]
    features: dict[int, list[int]]
    errors: dict[int, bool]
    scores: dict[int, list[float]]
    seconds: float

    @property
    def feature_nodes(self) -> int:
        return sum(len(f) for f in self.features.values())

    @property
    def error_nodes(self) -> int:
        return sum(self.errors.values())

    def ranked(self) -> list[tuple[int, int]]:
        """Every kept feature as (site, feature), by score, best first."""
        pairs = [
            (score, site, f)
            for site in self.sites
            for f, score in zip(self.features[site], self.scores[site], strict=True)
        ]
        return [(site, f) for _, site, f in sorted(pairs, key=lambda p: -p[0])]

    def top(self, k: int) -> dict[int, list[int]]:
        """The ``k`` best features of the circuit, by site."""
        chosen: dict[int, list[int]] = {site: [] for site in self.sites}
        for site, f in self.ranked()[:k]:
            chosen[site].append(f)
        return chosen

    @classmethod
    def from_dict(cls, data: dict) -> WholeCircuit:
        keyed = {k: {int(s): v for s, v in data[k].items()} for k in ("features", "errors")}
        scores = {int(s): v for s, v in data["scores"].items()}
        return cls(data["sites"], **keyed, scores=scores, seconds=data["seconds"])


def ratio(numerator: float, denominator: float, scale: float) -> float | None:
    """``numerator / denominator``, or None unless ``scale`` (the clean target) > 0 and the
    denominator > 1% of it: a denominator near zero or of the wrong sign gives no share."""
    return numerator / denominator if scale > 0 and denominator > 0.01 * scale else None


def masks_of(
    decompositions: dict[int, LayerDecomposition],
    keep: list[tuple[dict[int, list[int] | None], dict[int, bool]]],
) -> Masks:
    """Kept-weight masks, one row per entry of ``keep``: (features kept per site, None: every
    feature; error node kept per site)."""
    masks = {}
    for site, dec in decompositions.items():
        d_sae = dec.directions.shape[0]
        rows = torch.zeros(len(keep), d_sae + 1)
        for row, (features, errors) in enumerate(keep):
            chosen = features[site]
            if chosen is None:
                rows[row, :d_sae] = 1.0
            else:
                rows[row, chosen] = 1.0
            rows[row, d_sae] = float(errors[site])
        masks[site] = rows
    return masks


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
        kept = masks[site].repeat_interleave(n, 0)  # (rows * n, d_sae + 1)

        def edit(hidden: torch.Tensor, dec=dec, kept=kept) -> torch.Tensor:
            edited = dec.remove(hidden.cpu(), real, 1 - kept[:, :-1], 1 - kept[:, -1])
            return edited.to(hidden.device, hidden.dtype)

        edits.append(edit_resid_pre(lm.model, site, edit))
    ids, attn = run.input_ids.repeat(rows, 1), run.attention_mask.repeat(rows, 1)
    out = run_recorded(lm.model, ids, attn, mlp=[target.layer], edits=edits, last_only=True)
    return out.target(target).cpu().view(rows, n)


def active(dec: LayerDecomposition, run: PromptRun) -> torch.Tensor:
    """(d_sae,) bool: the features of ``dec``'s layer active at some real token of ``run``."""
    f, _ = dec.encode(run.resid[dec.layer])  # (n, seq, d_sae)
    return (f * run.real[..., None]).amax((0, 1)) > 0


def nothing(sites: list[int]) -> tuple[dict[int, list[int] | None], dict[int, bool]]:
    """The empty circuit: every feature and error node removed at every site."""
    return {site: [] for site in sites}, {site: False for site in sites}

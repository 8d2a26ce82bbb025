"""Real prompts where a target fires: windows of corpus texts ranked by the target's activation.

Each text of the pool is read from its start (its first ``window`` tokens). The target's
peak in a text is its largest activation at a token with at least ``min_context`` real tokens
before it: a neuron that fires hardest on the first tokens of any text answers to the position,
not to a context, and a prompt of ``<bos>`` and one token holds no circuit to map. A prompt is
the window of at most ``window`` tokens that ends at the peak (``<bos>`` first), so every
prompt's read position is its last token; attention is causal, so the tokens after the peak
change nothing read there. The target's activation stored with a prompt is measured on the
window itself.

The pool is split three ways by text (positions 0, 1, 2 modulo 3): ``build`` prompts choose the
circuit, ``effect`` prompts measure its nodes and edges, ``heldout`` prompts measure its
faithfulness, so no figure is measured on the prompts that chose what it measures. Identical
and near-identical windows (the same last ``NEAR_TOKENS`` tokens, or token sets overlapping by
``NEAR_JACCARD`` or more) are kept once over all three parts, the strongest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.model.forward import run_recorded
from circuitmap.model.text import token_texts
from circuitmap.model.tokens import pad_token_ids

if TYPE_CHECKING:
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.model.tokens import Batch

PARTS = ("build", "effect", "heldout")  # the pool's texts at positions 0, 1, 2 modulo 3
MAP_PROMPTS = len(PARTS)  # a prompt set gives a map at least one text for each part
NEAR_TOKENS = 16  # windows ending in the same this many tokens are near-identical
NEAR_JACCARD = 0.9  # and so are windows whose token sets overlap this much
POSITION_EFFECT = 0.5  # the share of top texts peaking before min_context that is reported


@dataclass
class Prompts:
    """Prompts for one target, each a window of a text ending at the target's peak."""

    texts: list[str]  # the whole text each window was cut from
    token_ids: list[list[int]]  # the window: <bos>, then the text's tokens offset..peak
    activations: list[float]  # the target's activation at the window's last token
    tokens: list[list[str]] = field(default_factory=list)  # each token's text (model.text)
    offsets: list[int] = field(default_factory=list)  # the window's first text token
    peaks: list[int] = field(default_factory=list)  # the peak's position in its text's tokens

    def batch(self, lm: LoadedModel) -> Batch:
        """The prompts as one left-padded batch (n, seq): each peak is column -1."""
        return pad_token_ids(lm, self.token_ids)


@dataclass
class PromptSplit:
    """A target's prompts: ``build`` prompts choose and weigh its circuit, ``effect`` prompts
    measure its nodes and edges, ``heldout`` prompts measure its faithfulness, and ``silent``
    texts, where the target does not fire, define what "removed" means (from the build part of
    the corpus pool). ``source`` names the pool: ``corpus`` or the prompt set.
    ``early_peaks``: of the texts where the target fires most, the share whose largest
    activation sits within the first ``min_context`` tokens (a position effect)."""

    build: Prompts
    heldout: Prompts
    silent: Prompts
    source: str
    effect: Prompts = field(default_factory=lambda: Prompts([], [], []))
    early_peaks: float | None = None

    @property
    def corpus_max(self) -> float | None:
        """The target's largest activation on its prompts (None: no prompt)."""
        values = self.build.activations + self.effect.activations + self.heldout.activations
        return max(values, default=None)

    def to_dict(self) -> dict:
        parts = ("build", "effect", "heldout", "silent")
        return {"source": self.source, "early_peaks": self.early_peaks} | {
            name: getattr(self, name).__dict__ for name in parts
        }

    @classmethod
    def from_dict(cls, data: dict) -> PromptSplit:
        parts = {
            name: Prompts(**data[name])
            for name in ("build", "effect", "heldout", "silent")
            if name in data
        }
        return cls(**parts, source=data["source"], early_peaks=data.get("early_peaks"))


@dataclass
class _Peak:
    """One text's peak: its scan activation, the text's index, its tokens and the window."""

    value: float  # the target's activation at the peak (with min_context tokens before it)
    largest: float  # its largest activation anywhere in the text (the position effect too)
    text: int
    ids: list[int]  # the text's scanned tokens (<bos> first when the tokenizer adds it)
    peak: int  # index into ids
    start: int  # the window's first text token (index into ids)
    early: bool  # the unrestricted peak lies before min_context

    def window(self, bos: int | None) -> list[int]:
        head = [bos] if bos is not None and self.ids[0] == bos else []
        return head + self.ids[self.start : self.peak + 1]


@torch.no_grad()
def _peaks(
    lm: LoadedModel,
    texts: list[str],
    targets: list[Target],
    *,
    window: int,
    min_context: int,
    batch_size: int,
) -> dict[str, list[_Peak | None]]:
    """Per target id, per text: its peak at a token with ``min_context`` real tokens before it
    (None: the text is too short). One pass serves every target: it records the MLP of each
    target layer and stops at the deepest."""
    tok = lm.tokenizer
    bos = tok.bos_token_id
    found: dict[str, list[_Peak | None]] = {t.id: [] for t in targets}
    for first in range(0, len(texts), batch_size):
        rows = [
            tok(text, truncation=True, max_length=window)["input_ids"]
            for text in texts[first : first + batch_size]
        ]
        batch = pad_token_ids(lm, rows)
        width = batch.input_ids.shape[1]
        mlp = run_recorded(
            lm.model, batch.input_ids, batch.attention_mask, mlp={t.layer for t in targets}
        ).mlp
        for t in targets:
            acts = mlp[t.layer][..., t.neuron].float().cpu()  # (batch, width)
            for i, ids in enumerate(rows):
                head = 1 if bos is not None and ids and ids[0] == bos else 0
                row = acts[i, width - len(ids) :]  # (len(ids),) aligned with ids
                real = row[head:]
                if len(real) <= min_context:
                    found[t.id].append(None)
                    continue
                eligible = real[min_context:]
                peak = head + min_context + int(eligible.argmax())
                start = max(head, peak + 1 - (window - head))
                early = int(real.argmax()) < min_context
                found[t.id].append(
                    _Peak(float(row[peak]), float(real.max()), first + i, ids, peak, start, early)
                )
    return found


def _near(a: list[int], b: list[int]) -> bool:
    """Whether two windows are identical or near-identical (see the module docstring)."""
    if a[-NEAR_TOKENS:] == b[-NEAR_TOKENS:]:
        return True
    sa, sb = set(a), set(b)
    return len(sa & sb) >= NEAR_JACCARD * len(sa | sb)


def _distinct(
    peaks: list[_Peak], counts: dict[int, int], bos: int | None, first: int
) -> dict[int, list[_Peak]]:
    """The strongest peaks of each part (``counts``: part -> how many; a text's part is its
    position from ``first`` modulo 3), strongest first over all parts, dropping a window
    near-identical to one already kept in any part."""
    chosen: dict[int, list[_Peak]] = {part: [] for part in counts}
    kept: list[list[int]] = []
    for p in sorted(peaks, key=lambda p: -p.value):
        part = (p.text - first) % len(PARTS)
        if len(chosen[part]) >= counts[part]:
            continue
        ids = p.window(bos)
        if any(_near(ids, other) for other in kept):
            continue
        kept.append(ids)
        chosen[part].append(p)
    return chosen


def _prompts(lm: LoadedModel, texts: list[str], peaks: list[_Peak], target: Target) -> Prompts:
    """The windows of ``peaks`` with the target measured on each, strongest first."""
    bos = lm.tokenizer.bos_token_id
    windows = [p.window(bos) for p in peaks]
    values: list[float] = []
    if windows:
        batch = pad_token_ids(lm, windows)
        out = run_recorded(
            lm.model, batch.input_ids, batch.attention_mask, mlp=[target.layer], last_only=True
        )
        values = out.target(target).cpu().tolist()  # (n,)
    order = sorted(range(len(peaks)), key=lambda i: -values[i])
    return Prompts(
        texts=[texts[peaks[i].text] for i in order],
        token_ids=[windows[i] for i in order],
        activations=[values[i] for i in order],
        offsets=[peaks[i].start for i in order],
        peaks=[peaks[i].peak for i in order],
    )


def _silent(texts: list[str], peaks: list[_Peak | None], n: int, window: int) -> Prompts:
    """The ``n`` texts of the build part whose largest activation is lowest, each its first
    ``window`` tokens: they define what "removed" means."""
    candidates = [p for p in peaks if p is not None and p.text % len(PARTS) == 0]
    ranked = sorted(candidates, key=lambda p: p.largest)[:n]  # silent at every position
    return Prompts(
        texts=[texts[p.text] for p in ranked],
        token_ids=[p.ids[:window] for p in ranked],
        activations=[p.largest for p in ranked],
        offsets=[0] * len(ranked),
        peaks=[p.peak for p in ranked],
    )


def check_fires(target: Target, split: PromptSplit) -> None:
    """A one-line error unless every part of ``split`` holds a prompt and ``target`` fires on
    its build prompts and, on average, on its effect prompts (what its effects are shares of)."""
    for name in PARTS:
        if not getattr(split, name).token_ids:
            raise CircuitmapError(
                f"target {target.id} has no {name} prompt ({split.source}): no text of that part "
                "holds a window with the context asked for; use a larger --prompt-pool, a "
                "smaller --min-context or more prompts"
            )
    acts = sorted(split.build.activations, reverse=True)
    if acts[0] <= 0 or sum(split.effect.activations) <= 0:
        raise CircuitmapError(
            f"target {target.id} does not fire on its prompts ({split.source}): its largest "
            f"activation there is {acts[0] + 0.0:.4g}, and a circuit of a silent target has no "
            "share to measure; choose a target that fires (`circuitmap find`) or prompts where "
            "it does (--prompts)"
        )


def top_prompts(
    lm: LoadedModel,
    pool: list[str],
    targets: list[Target],
    *,
    n: int,
    n_heldout: int,
    n_silent: int,
    n_effect: int = 0,
    prompt_set: tuple[str, list[str]] | None = None,
    max_tokens: int = 64,
    min_context: int = 8,
    batch_size: int = 8,
) -> dict[str, PromptSplit]:
    """For each target (by id): ``n`` build, ``n_effect`` effect and ``n_heldout`` held-out
    windows of at most ``max_tokens`` tokens on which it fires most, from the three parts of
    ``prompt_set`` (name, texts) or of the corpus ``pool`` (see the module docstring), and the
    ``n_silent`` texts of the pool's build part where it fires least. A part may hold fewer
    prompts than asked when the pool lacks distinct windows with enough context."""
    name, texts = prompt_set if prompt_set else ("corpus", pool)
    everything = pool + texts if prompt_set else pool
    found = _peaks(
        lm,
        everything,
        targets,
        window=max_tokens,
        min_context=min_context,
        batch_size=batch_size,
    )
    offset = len(pool) if prompt_set else 0
    bos = lm.tokenizer.bos_token_id
    split = {}
    for t in targets:
        own = [p for p in found[t.id][offset:] if p is not None]
        chosen = _distinct(own, {0: n, 1: n_effect, 2: n_heldout}, bos, offset)
        strongest = sorted(own, key=lambda p: -p.largest)[: n + n_effect + n_heldout]
        parts = {part: _prompts(lm, everything, chosen[i], t) for i, part in enumerate(PARTS)}
        split[t.id] = PromptSplit(
            build=parts["build"],
            effect=parts["effect"],
            heldout=parts["heldout"],
            silent=_silent(everything, found[t.id][: len(pool)], n_silent, max_tokens),
            source=name,
            early_peaks=sum(p.early for p in strongest) / len(strongest) if strongest else None,
        )
        for part in (*parts.values(), split[t.id].silent):
            part.tokens = [token_texts(lm.tokenizer, ids) for ids in part.token_ids]
    return split

"""Real prompts where a target fires: corpus texts ranked by the target's activation.

A chosen prompt is cut right after the token where the target fires most. Attention is causal,
so the tokens after it cannot change anything read there, and cutting them makes every ablation
forward on the prompts cheaper; every prompt's read position is then its last token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from circuitmap.errors import CircuitmapError
from circuitmap.model.forward import run_recorded
from circuitmap.model.text import token_texts
from circuitmap.model.tokens import batches, pad_token_ids

if TYPE_CHECKING:
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel
    from circuitmap.model.tokens import Batch


@dataclass
class Prompts:
    """Prompts for one target, each cut after the target's largest activation."""

    texts: list[str]
    token_ids: list[list[int]]  # each prompt's tokens up to and including the target's peak
    activations: list[float]  # the target's activation at that peak
    tokens: list[list[str]] = field(default_factory=list)  # each token's text (model.text)

    def batch(self, lm: LoadedModel) -> Batch:
        """The prompts as one left-padded batch (n, seq): each peak is column -1."""
        return pad_token_ids(lm, self.token_ids)


@dataclass
class PromptSplit:
    """A target's prompts: ``build`` prompts choose and weigh its circuit, ``heldout`` prompts
    (never seen by the map) measure its faithfulness, and ``silent`` texts, where the target does
    not fire, define what "removed" means. Build and held-out prompts come from disjoint halves
    of the pool (even and odd positions), the silent texts from the build half of the corpus
    pool. ``source`` names the pool: ``corpus`` or the prompt set."""

    build: Prompts
    heldout: Prompts
    silent: Prompts
    source: str

    def to_dict(self) -> dict:
        return {"source": self.source} | {
            name: getattr(self, name).__dict__ for name in ("build", "heldout", "silent")
        }

    @classmethod
    def from_dict(cls, data: dict) -> PromptSplit:
        parts = {name: Prompts(**data[name]) for name in ("build", "heldout", "silent")}
        return cls(**parts, source=data["source"])


MAP_PROMPTS = 2  # a prompt set gives a map its build (even lines) and held-out (odd lines) prompts

Peak = tuple[float, int, list[int], list[int]]  # activation, text index, cut ids, all ids


@torch.no_grad()
def _peaks(
    lm: LoadedModel, texts: list[str], targets: list[Target], max_tokens: int, batch_size: int
) -> dict[str, list[Peak]]:
    """Per target id, per text: its largest activation over real tokens, and the text's tokens
    up to that peak and in full. One pass serves every target: it records the MLP of each target
    layer and stops at the deepest."""
    found: dict[str, list[Peak]] = {t.id: [] for t in targets}
    start = 0
    for batch in batches(lm, texts, max_tokens, batch_size):
        ids, attn = batch.input_ids, batch.attention_mask
        mlp = run_recorded(lm.model, ids, attn, mlp={t.layer for t in targets}).mlp
        for t in targets:
            acts = mlp[t.layer][..., t.neuron].float()  # (batch, seq)
            values, peaks = acts.masked_fill(~batch.real, float("-inf")).max(-1)  # (batch,)
            for i, (value, peak) in enumerate(zip(values.tolist(), peaks.tolist(), strict=True)):
                kept = ids[i][attn[i].bool()].tolist()
                cut = ids[i, : peak + 1][attn[i, : peak + 1].bool()].tolist()
                found[t.id].append((value, start + i, cut, kept))
        start += len(ids)
    return found


def _chosen(texts: list[str], peaks: list[Peak], n: int, *, lowest: bool = False) -> Prompts:
    """The ``n`` texts whose peak is highest (cut after the peak), or lowest (kept whole)."""
    ranked = sorted(peaks, key=lambda item: item[0] if lowest else -item[0])[:n]
    return Prompts(
        texts=[texts[i] for _, i, _, _ in ranked],
        token_ids=[whole if lowest else cut for _, _, cut, whole in ranked],
        activations=[value for value, *_ in ranked],
    )


def check_fires(target: Target, split: PromptSplit, effect_prompts: int) -> None:
    """A one-line error unless ``target`` fires on its build prompts: their largest activation,
    and the mean over the ``effect_prompts`` strongest (what its effects are shares of), are
    above 0."""
    acts = sorted(split.build.activations, reverse=True)
    strongest = acts[:effect_prompts]
    if not acts or acts[0] <= 0 or sum(strongest) <= 0:
        largest = f"{acts[0] + 0.0:.4g}" if acts else "none"
        raise CircuitmapError(
            f"target {target.id} does not fire on its prompts ({split.source}): its largest "
            f"activation there is {largest}, and a circuit of a silent target has no share to "
            "measure; choose a target that fires (`circuitmap find`) or prompts where it does "
            "(--prompts)"
        )


def top_prompts(
    lm: LoadedModel,
    pool: list[str],
    targets: list[Target],
    *,
    n: int,
    n_heldout: int,
    n_silent: int,
    prompt_set: tuple[str, list[str]] | None = None,
    max_tokens: int = 64,
    batch_size: int = 8,
) -> dict[str, PromptSplit]:
    """For each target (by id): the ``n`` build and ``n_heldout`` held-out texts on which its
    largest activation is highest, from the two halves of ``prompt_set`` (name, texts) or of the
    corpus ``pool``; and the ``n_silent`` texts of the pool's build half where it is lowest."""
    name, texts = prompt_set if prompt_set else ("corpus", pool)
    everything = pool + texts if prompt_set else pool
    found = _peaks(lm, everything, targets, max_tokens, batch_size)
    offset = len(pool) if prompt_set else 0
    split = {}
    for t in targets:
        own = found[t.id][offset:]  # the pool's texts, or the prompt set's
        corpus = found[t.id][: len(pool)]
        split[t.id] = PromptSplit(  # each peak holds its text's index in ``everything``
            build=_chosen(everything, own[0::2], n),
            heldout=_chosen(everything, own[1::2], n_heldout),
            silent=_chosen(everything, corpus[0::2], n_silent, lowest=True),
            source=name,
        )
        for part in (split[t.id].build, split[t.id].heldout, split[t.id].silent):
            part.tokens = [token_texts(lm.tokenizer, ids) for ids in part.token_ids]
    return split

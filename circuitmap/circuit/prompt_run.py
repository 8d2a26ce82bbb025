"""A target's prompts recorded once: encoded, their clean resid_pre at the mapped layers, and
the gradient of the target with respect to each (one forward stopped at the target, one
backward). Attribution, the decomposition, effects and faithfulness all read this record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitmap.model.forward import run_recorded
from circuitmap.model.hooks import edit_resid_pre
from circuitmap.model.tokens import length_splits

if TYPE_CHECKING:
    from circuitmap.circuit.prompts import Prompts
    from circuitmap.config import Target
    from circuitmap.model.load import LoadedModel


@dataclass
class PromptRun:
    """A target's prompts, encoded once, with their clean resid_pre and its gradient."""

    input_ids: torch.Tensor  # (n, seq), left-padded; the target's peak is the last column
    attention_mask: torch.Tensor  # (n, seq)
    real: torch.Tensor  # (n, seq) bool: real tokens (not padding, not BOS)
    resid: dict[int, torch.Tensor]  # layer -> (n, seq, d_model) clean resid_pre
    grads: dict[int, torch.Tensor]  # layer -> (n, seq, d_model) d(sum of targets)/d(resid_pre)
    target: torch.Tensor  # (n,) clean target activation at the last column

    def subset(self, rows: torch.Tensor, width: int | None = None) -> PromptRun:
        """The prompts ``rows`` (indices), keeping the last ``width`` columns (default: all)."""
        cols = slice(self.input_ids.shape[1] - (width or self.input_ids.shape[1]), None)

        def cut(x: torch.Tensor) -> torch.Tensor:
            return x[rows.to(x.device)][:, cols]

        return PromptRun(
            cut(self.input_ids),
            cut(self.attention_mask),
            cut(self.real),
            {layer: cut(h) for layer, h in self.resid.items()},
            {layer: cut(g) for layer, g in self.grads.items()},
            self.target[rows],
        )

    def chunks(self, rows: int) -> list[tuple[torch.Tensor, PromptRun]]:
        """The prompts in groups of similar length (shortest first) for batched forwards of
        ``rows`` rows per prompt, each group without the padding columns none of its prompts
        uses, with its prompt indices (a left-padded prompt's activations do not depend on its
        padding). The groups are the split of the prompts sorted by length that minimises the
        token-rows the forwards compute, padding included, plus a fixed cost per forward
        (:func:`~circuitmap.model.tokens.length_splits`)."""
        lengths = self.attention_mask.sum(1).cpu()  # (n,)
        order = lengths.argsort(stable=True)
        return [
            (order[i:j], self.subset(order[i:j], int(lengths[order[j - 1]])))
            for i, j in length_splits(lengths[order].tolist(), rows)
        ]


def prompt_run(lm: LoadedModel, prompts: Prompts, layers: list[int], target: Target) -> PromptRun:
    """Encode ``prompts``, record resid_pre at ``layers`` and the gradient of the target
    (layer, neuron) with respect to each, in one forward (stopped at the target) and one
    backward."""
    batch = prompts.batch(lm)

    def leaf(hidden: torch.Tensor) -> torch.Tensor:
        return hidden.detach().requires_grad_(True)

    with torch.enable_grad():
        out = run_recorded(
            lm.model,
            batch.input_ids,
            batch.attention_mask,
            resid=layers,
            mlp=[target.layer],
            edits=[edit_resid_pre(lm.model, min(layers), leaf)],
            last_only=True,
        )
        resid = out.resid
        for hidden in resid.values():
            if not hidden.is_leaf:
                hidden.retain_grad()
        value = out.target(target)  # (n,)
        value.sum().backward()
    return PromptRun(
        batch.input_ids,
        batch.attention_mask,
        batch.real.cpu(),
        {layer: h.detach().float().cpu() for layer, h in resid.items()},
        {layer: h.grad.float().cpu() for layer, h in resid.items()},
        value.detach().cpu(),
    )

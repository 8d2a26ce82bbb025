"""The hooked forward: one batch through the transformer body that records what it is asked
for (resid_pre of some layers, the MLP post-activation of others), under optional edits, and
stops right after the deepest thing it records, so no later layer (nor the unembedding) runs.
TransformerLens's ``run_with_cache`` and nnsight's ``.save()`` are the models of the idea."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import Cache, DynamicCache

from circuitmap.model.hooks import (
    StopForward,
    decoder_layers,
    record_mlp_post,
    record_resid_pre,
    run_body,
)

if TYPE_CHECKING:
    from circuitmap.config import Precision, Target


@dataclass
class Recorded:
    """What one forward recorded, by layer."""

    resid: dict[int, torch.Tensor]  # layer -> resid_pre (batch, seq, d_model)
    mlp: dict[int, torch.Tensor]  # layer -> MLP post-activation (batch, seq, d_mlp)

    def target(self, target: Target) -> torch.Tensor:
        """The target neuron at each row's last position (where a prompt peaks), in float32:
        (batch,). The forward must have recorded the MLP of ``target.layer`` (a KeyError
        otherwise); gradients flow through it."""
        return self.mlp[target.layer][:, -1, target.neuron].float()


def run_recorded(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    resid: Iterable[int] = (),
    mlp: Iterable[int] = (),
    edits: Iterable[AbstractContextManager] = (),
    last_only: bool = False,
    cache: Cache | None = None,
) -> Recorded:
    """Run ``input_ids`` (batch, seq) with ``edits`` (hook context managers such as
    :func:`~circuitmap.model.hooks.edit_resid_pre` or :func:`~circuitmap.model.hooks.start_at`,
    entered first, so a record at an edited layer sees the edited state), recording resid_pre of
    the ``resid`` layers and the MLP post-activation of the ``mlp`` layers; the forward stops
    after the deepest record (the MLP of layer l runs after resid_pre of l). ``last_only``: the
    deepest MLP, where the forward stops, is computed and recorded at the last position only
    (batch, 1, d_mlp), for a target read there. ``cache``: see :func:`prefix_cache`."""
    resid, mlp = sorted(set(resid)), sorted(set(mlp))
    assert resid or mlp, "a recorded forward records something"
    stop_at_mlp = bool(mlp) and (not resid or mlp[-1] >= resid[-1])
    with ExitStack() as stack:
        for edit in edits:
            stack.enter_context(edit)
        resid_records = (
            stack.enter_context(record_resid_pre(model, resid, stop=not stop_at_mlp))
            if resid
            else {}
        )
        mlp_records = [
            stack.enter_context(
                record_mlp_post(
                    model,
                    layer,
                    stop=stop_at_mlp and layer == mlp[-1],
                    last_only=last_only and layer == mlp[-1],
                )
            )
            for layer in mlp
        ]
        run_body(model, input_ids, attention_mask, cache)
    return Recorded(resid_records, {k: v for record in mlp_records for k, v in record.items()})


@torch.no_grad()
def prefix_cache(model: nn.Module, input_ids: torch.Tensor, layer: int) -> Cache:
    """The keys and values of ``input_ids`` (1, seq) at every layer up to ``layer``, for forwards
    that continue the same tokens (edits at a later position cannot change them: attention is
    causal); :func:`repeat_cache` gives each such forward its own copy."""
    cache = DynamicCache(config=model.base_model.config)
    stop = decoder_layers(model)[layer].register_forward_hook(_stop)
    try:
        run_body(model, input_ids, cache=cache)
    finally:
        stop.remove()
    return cache


def _stop(*_: object) -> None:
    raise StopForward


def repeat_cache(cache: Cache, rows: int) -> Cache:
    """A copy of a one-row ``cache`` for a batch of ``rows`` (a forward adds to its cache)."""
    repeated = copy.deepcopy(cache)
    repeated.batch_repeat_interleave(rows)
    return repeated


def matmul_precision(device: torch.device, precision: Precision) -> AbstractContextManager:
    """Run a block's matmuls in ``precision``: ``"bfloat16"`` is ``torch.autocast`` (weights and
    the residual stream stay in their dtype, each matmul takes bfloat16 inputs and accumulates in
    float32; about 2.5x faster on CPUs with AMX or AVX512-BF16, and on GPUs), ``"float32"``
    changes nothing. :func:`full_precision` opts a block back out."""
    if precision == "float32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def full_precision(device: torch.device) -> AbstractContextManager:
    """Undo :func:`matmul_precision` inside it (for SAE arithmetic, whose TopK choices and
    error terms are differences of nearly equal numbers)."""
    return torch.autocast(device_type=device.type, enabled=False)

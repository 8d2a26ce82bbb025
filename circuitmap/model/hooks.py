"""Hook points on plain HF decoder-only models (Gemma 2, Gemma 3, Llama, Qwen families).

Conventions used everywhere in circuitmap:
- ``resid_pre`` of layer l is the hidden state entering decoder layer l (for l = 0: the scaled
  embeddings). It equals ``hook_resid_post`` of layer l-1 in TransformerLens / sae-lens names.
- The MLP post-activation of layer L is the input of ``mlp.down_proj``: act(gate(x)) * up(x),
  shape (batch, seq, d_mlp). A "neuron" is one coordinate of it.
- Forwards stop early by raising :class:`StopForward` from the deepest hook they need, so no layer
  after it (nor the 262k-vocab unembedding) is ever run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from transformers import Cache


class StopForward(Exception):
    """Raised by a hook once everything a forward needs has been recorded."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a causal LM (``model.model.layers`` and multimodal variants)."""
    for path in ("model.layers", "model.language_model.layers", "language_model.model.layers"):
        module: Any = model
        for name in path.split("."):
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise TypeError(f"cannot find decoder layers in {type(model).__name__}")


def mlp_down_proj(model: nn.Module, layer: int) -> nn.Linear:
    """The ``down_proj`` of layer ``layer``'s MLP; its input is the MLP post-activation."""
    return decoder_layers(model)[layer].mlp.down_proj


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


@contextmanager
def edit_resid_pre(
    model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor | None]
) -> Iterator[None]:
    """Within the block, resid_pre (batch, seq, d_model) of ``layer`` is replaced by
    ``edit(hidden)``; an edit that returns None leaves it as it is."""

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        edited = edit(_hidden(args, kwargs))
        return None if edited is None else _with_hidden(args, kwargs, edited)

    handle = decoder_layers(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def edit_mlp_post(
    model: nn.Module, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Within the block, the MLP post-activation (batch, seq, d_mlp) of ``layer`` is replaced by
    ``edit(post)`` before down_proj reads it."""

    def hook(_module: nn.Module, args: tuple) -> tuple:
        return (edit(args[0]), *args[1:])

    handle = mlp_down_proj(model, layer).register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def inject_rows(
    model: nn.Module, layers: list[int], position: int, vectors: torch.Tensor
) -> Iterator[None]:
    """Within the block, row r's resid_pre of ``layers[r]`` at ``position`` is replaced by
    ``vectors[r]`` (rows, d_model): every row of one batch injects at its own layer. A row runs
    unchanged up to its layer, so its earlier layers compute the plain prompt."""
    by_layer: dict[int, list[int]] = {}
    for row, layer in enumerate(layers):
        by_layer.setdefault(layer, []).append(row)
    with ExitStack() as stack:
        for layer, rows in by_layer.items():
            index = torch.tensor(rows)

            def edit(hidden: torch.Tensor, index: torch.Tensor = index) -> torch.Tensor:
                patched = hidden.clone()  # (rows, seq, d_model)
                patched[index.to(hidden.device), position] = vectors[index].to(
                    hidden.device, hidden.dtype
                )
                return patched

            stack.enter_context(edit_resid_pre(model, layer, edit))
        yield


class _PassThrough(nn.Module):
    """Stands in for a skipped decoder layer: returns its input hidden state."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


@contextmanager
def start_at(model: nn.Module, layer: int, hidden: torch.Tensor) -> Iterator[None]:
    """Within the block, a forward skips the decoder layers before ``layer`` and starts from
    ``hidden`` (batch, seq, d_model) as resid_pre of ``layer``: for many edited copies of a batch
    whose earlier layers would all compute the same thing. The skipped layers are swapped for
    pass-throughs in place (so every layer keeps its index, which picks its attention mask) and
    put back afterwards; the embeddings still run, to build masks and positions."""
    layers = decoder_layers(model)
    skipped = [layers[i] for i in range(layer)]
    try:
        for i in range(layer):
            layers[i] = _PassThrough()
        with edit_resid_pre(model, layer, lambda h: hidden.to(h.device, h.dtype)):
            yield
    finally:
        for i, module in enumerate(skipped):
            layers[i] = module


@contextmanager
def record_resid_pre(
    model: nn.Module, layers: list[int], *, stop: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Record resid_pre (batch, seq, d_model) of each layer; ``stop`` ends the forward after the
    deepest one."""
    records: dict[int, torch.Tensor] = {}
    deepest = max(layers)
    handles = []
    for layer in sorted(set(layers)):

        def hook(_m: nn.Module, args: tuple, kwargs: dict, layer: int = layer) -> None:
            records[layer] = _hidden(args, kwargs)
            if stop and layer == deepest:
                raise StopForward

        handles.append(
            decoder_layers(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
        )
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def record_mlp_post(
    model: nn.Module, layer: int, *, stop: bool = False, last_only: bool = False
) -> Iterator[dict[int, torch.Tensor]]:
    """Record the MLP post-activation (batch, seq, d_mlp) of ``layer`` under key ``layer``;
    ``stop`` ends the forward right there (before down_proj runs). With ``last_only`` (and
    ``stop``) the MLP runs on the last position alone and the record is (batch, 1, d_mlp): the
    MLP works token by token, so that position's value, and its gradient, are unchanged."""
    assert stop or not last_only, "a forward that goes on past the MLP needs every position"
    records: dict[int, torch.Tensor] = {}

    def hook(_m: nn.Module, args: tuple) -> None:
        records[layer] = args[0]
        if stop:
            raise StopForward

    def last(_m: nn.Module, args: tuple) -> tuple:
        return (args[0][:, -1:], *args[1:])  # (batch, 1, d_model)

    handles = [mlp_down_proj(model, layer).register_forward_pre_hook(hook)]
    if last_only:
        handles.append(decoder_layers(model)[layer].mlp.register_forward_pre_hook(last))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def real_position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq) position ids that count real tokens only (left padding gets 0)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def run_body(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    cache: Cache | None = None,
) -> None:
    """Run the transformer body (no unembedding) until a hook raises :class:`StopForward`.

    With an ``attention_mask`` (left padding), position ids count real tokens only, so a padded
    text gets the same positions, and the same activations, as the text alone. With a ``cache``
    (keys and values of earlier tokens, see :func:`~circuitmap.model.forward.prefix_cache`),
    ``input_ids`` continue those tokens and their keys and values are added to it.
    """
    position_ids = None if attention_mask is None else real_position_ids(attention_mask)
    try:
        model.base_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=cache is not None,
        )
    except StopForward:
        pass

"""The options of `circuitmap map` that set how a circuit is built, measured and shown: their
defaults and choices come from :class:`~circuitmap.config.MapConfig` (one source)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from circuitmap.config import Ablation, MapConfig, SelectMethod, choices

from .options import with_options

_MAP = MapConfig


def _words(literal: Any) -> str:
    return " | ".join(choices(literal))


def map_settings(
    select: Annotated[
        str,
        typer.Option(
            help="How each layer's circuit features are chosen: attribution (what they do to "
            "the target on the build prompts) or activation (the report's top-k on X): "
            + _words(SelectMethod)
            + "."
        ),
    ] = _MAP.select,
    max_features: Annotated[
        int, typer.Option(help="--select attribution: most features a layer keeps.", min=1)
    ] = _MAP.max_features,
    share: Annotated[
        float,
        typer.Option(
            help="--select attribution: keep features until they carry this share of the "
            "layer's positive attribution.",
            min=0,
            max=1,
        ),
    ] = _MAP.share,
    prompts: Annotated[
        str | None,
        typer.Option(
            help="Prompts to build and test the circuit on: a shipped set (definitions, "
            "math_notation, licences, narrative) or a file, one prompt a line [default: the "
            "corpus texts where the target fires most]."
        ),
    ] = _MAP.prompts,
    ablation: Annotated[
        str,
        typer.Option(
            help="What removing a feature means: silent (its mean where the target is silent), "
            "zero, or mean (its corpus mean): " + _words(Ablation) + "."
        ),
    ] = _MAP.ablation,
    n_prompts: Annotated[
        int, typer.Option(help="Build prompts where the target fires.", min=1)
    ] = _MAP.n_prompts,
    effect_prompts: Annotated[
        int,
        typer.Option(
            help="The strongest build prompts on which nodes and edges are measured.", min=1
        ),
    ] = _MAP.effect_prompts,
    n_heldout: Annotated[
        int, typer.Option(help="Held-out prompts for the faithfulness figures.", min=1)
    ] = _MAP.n_heldout,
    faithfulness: Annotated[
        bool, typer.Option(help="Measure the circuit on the held-out prompts.")
    ] = _MAP.faithfulness,
    skip_edges: Annotated[
        bool, typer.Option(help="Also measure edges that skip mapped layers.")
    ] = _MAP.skip_edges,
    node_threshold: Annotated[
        float,
        typer.Option(
            help="Show the features carrying this share of each layer's influence.", min=0, max=1
        ),
    ] = _MAP.node_threshold,
    edge_threshold: Annotated[
        float,
        typer.Option(help="Show the edges carrying this share of the edge weight.", min=0, max=1),
    ] = _MAP.edge_threshold,
    restarts: Annotated[
        int,
        typer.Option(help="Random restarts per layer (feature nodes get agreement rates).", min=0),
    ] = _MAP.restarts,
    controls: Annotated[
        int,
        typer.Option(
            help="Control features per layer, matched in activation level (p-values).", min=0
        ),
    ] = _MAP.controls,
) -> dict[str, Any]:
    """The :class:`MapConfig` fields these options set, by name."""
    return dict(locals())


with_map_settings = with_options(map_settings, "settings")

"""The options of `circuitmap map`: which targets, how a circuit is built, measured and shown
(defaults and choices from :class:`~circuitmap.config.MapConfig`, one source), and where Ray
runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import (
    Ablation,
    MapConfig,
    ModelConfig,
    Precision,
    SelectMethod,
    Target,
    choices,
)
from circuitmap.errors import CircuitmapError

from .app import finite
from .options import parse_target, read_targets, with_options

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
            callback=finite(0, 1, above=True),
        ),
    ] = _MAP.share,
    ig_steps: Annotated[
        int,
        typer.Option(
            help="--select attribution: points of the path from the reference to the clean "
            "activations whose gradient is averaged (1: its midpoint; 0: the clean gradient).",
            min=0,
        ),
    ] = _MAP.ig_steps,
    rounds: Annotated[
        int,
        typer.Option(
            help="--select attribution: rounds in which a layer keeps its features; each later "
            "round ranks the rest given the features kept so far.",
            min=1,
        ),
    ] = _MAP.rounds,
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
    min_context: Annotated[
        int,
        typer.Option(
            help="Real tokens every prompt holds before the target's peak (1 to --prompt-tokens "
            "minus 2)."
        ),
    ] = _MAP.min_context,
    prompt_pool: Annotated[
        int, typer.Option(help="Corpus texts ranked to choose the prompts.")
    ] = _MAP.prompt_pool,
    prompt_tokens: Annotated[
        int, typer.Option(help="The longest prompt window in tokens, <bos> and peak included.")
    ] = _MAP.prompt_tokens,
    budget: Annotated[
        int,
        typer.Option(help="Feature nodes of the whole circuit over all its sites (at least 1)."),
    ] = _MAP.budget,
    n_sites: Annotated[
        int, typer.Option(help="Sites of the whole circuit when --sites is not given.")
    ] = _MAP.n_sites,
    faithfulness: Annotated[
        bool, typer.Option(help="Measure the circuit on the held-out prompts.")
    ] = _MAP.faithfulness,
    curve: Annotated[
        bool,
        typer.Option(
            help="Also measure completeness and sufficiency at 5, 10, 20, 40 features a layer "
            "(validate faithfulness does by default)."
        ),
    ] = _MAP.curve,
    precision: Annotated[
        str,
        typer.Option(
            help="Matmul precision of the circuit's batched forwards (attribution, ablations, "
            "faithfulness); the residual stream and SAEs stay float32: " + _words(Precision) + "."
        ),
    ] = _MAP.precision,
    skip_edges: Annotated[
        bool, typer.Option(help="Also measure edges that skip mapped layers.")
    ] = _MAP.skip_edges,
    node_threshold: Annotated[
        float,
        typer.Option(
            help="Show the features carrying this share of each layer's influence.",
            callback=finite(0, 1, above=True),
        ),
    ] = _MAP.node_threshold,
    edge_threshold: Annotated[
        float,
        typer.Option(
            help="Show the edges carrying this share of the edge weight.",
            callback=finite(0, 1, above=True),
        ),
    ] = _MAP.edge_threshold,
    restarts: Annotated[
        int,
        typer.Option(help="Restarts per layer from corpus vectors (X's agreement).", min=0),
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


@dataclass
class TargetChoice:
    """The targets a map command names, in every form it accepts."""

    target_layer: int | None
    neuron: int | None
    target: list[str] | None
    targets_file: Path | None
    find_layer: int | None
    find_top: int
    positive: str
    negative: str

    def named(self) -> list[Target]:
        """The targets named on the command line or in the targets file, in order; with
        ``--find-layer``, neuron 0 of that layer stands in for the neurons it will find (they
        are checked like it before the model ranks them)."""
        chosen = [parse_target(spec) for spec in self.target or []]
        if self.target_layer is not None or self.neuron is not None:
            if self.target_layer is None or self.neuron is None:
                raise CircuitmapError("--target-layer and --neuron go together")
            chosen.append(Target(self.target_layer, self.neuron))
        if self.targets_file is not None:
            chosen += read_targets(self.targets_file)
        if self.find_layer is not None:
            chosen.append(Target(self.find_layer, 0))
        return chosen

    def resolve(self, model: ModelConfig) -> list[Target]:
        """Every named target, in order (``--find-layer`` ranks neurons with the model)."""
        from circuitmap.validate.probe import top_neurons

        chosen = self.named()
        if self.find_layer is not None:
            chosen.pop()  # the stand-in
            found = top_neurons(model, self.find_layer, self.find_top, self.positive, self.negative)
            chosen += found
        if not chosen:
            raise CircuitmapError(
                "map needs a target: --target-layer and --neuron, --target L:N, --targets-file, "
                "--find-layer, or --resume RUN"
            )
        return chosen


def target_choice(
    target_layer: Annotated[
        int | None, typer.Option(help="Layer L of the target MLP neuron.")
    ] = None,
    neuron: Annotated[
        int | None, typer.Option(help="Index n of the neuron in layer L's MLP.")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(help="A target as LAYER:NEURON, e.g. 12:1742; repeat for several."),
    ] = None,
    targets_file: Annotated[
        Path | None, typer.Option(help="File of targets, one LAYER:NEURON per line.")
    ] = None,
    find_layer: Annotated[
        int | None,
        typer.Option(help="Also map the top neurons of `circuitmap find` at this layer."),
    ] = None,
    find_top: Annotated[int, typer.Option(help="How many of them.", min=1)] = 3,
    positive: Annotated[
        str, typer.Option(help="--find-layer: prompt set the neurons should fire on.")
    ] = "definitions",
    negative: Annotated[
        str, typer.Option(help="--find-layer: prompt set they should not fire on.")
    ] = "licences",
) -> TargetChoice:
    return TargetChoice(**locals())


def ray_settings(
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join, e.g. auto [default: $RAY_ADDRESS or a new one]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ray workers (model copies) [default: one per GPU, or per CPU].", min=1),
    ] = None,
    gpus_per_worker: Annotated[
        float,
        typer.Option(
            help="GPUs each Ray worker holds (with --device auto: >1).", callback=finite(0)
        ),
    ] = 1,
    cpus_per_worker: Annotated[
        float, typer.Option(help="CPUs each Ray worker holds.", callback=finite(0))
    ] = 1,
) -> dict[str, Any]:
    """The keyword arguments of :class:`~circuitmap.mapping.executors.RayExecutor`."""
    return dict(
        address=ray_address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
    )


with_target_choice = with_options(target_choice, "targets")
with_ray_settings = with_options(ray_settings, "ray")

"""`circuitmap map`, `export`, `view` and `labels`: whole circuits and their files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import (
    EXECUTORS,
    MapConfig,
    Target,
)
from circuitmap.errors import CircuitmapError
from circuitmap.sae.train_config import SAETrainConfig

from . import options as o
from .app import app, finite, log, user_errors
from .map_options import TargetChoice, with_map_settings, with_ray_settings, with_target_choice

NOTE_UNITS = 100  # a map of this many units of work or more prints their number and time
ASK_UNITS = 500  # and from this many on starts only with --yes (or a yes on a terminal)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def confirm_size(config: MapConfig, run_dir: Path | None, yes: bool) -> None:
    """Before a long map (what is left of it in ``run_dir``): its units of work and an estimate
    of the time on stderr; from ``ASK_UNITS`` on, a one-line error unless ``yes`` or the user
    says yes on a terminal."""
    from circuitmap.mapping.saved import UNIT_SECONDS, units_left

    units = units_left(config, run_dir)
    if units < NOTE_UNITS:
        return
    about = (
        f"this map has {units} units of work left: about {_duration(units * UNIT_SECONDS)} at "
        "the embedded model's pace on 2 CPU cores"
    )
    if units < ASK_UNITS or yes:
        log(about)
    elif not sys.stdin.isatty():
        raise CircuitmapError(f"{about}: pass --yes to start it, or map fewer targets")
    elif not typer.confirm(f"{about}. Start it?", err=True):
        raise CircuitmapError(f"{about}: not started")


@app.command("map")
@user_errors
@o.with_method_options
@with_map_settings
@with_target_choice
@with_ray_settings
def map_cmd(
    method: o.Method,
    settings: dict[str, Any],
    targets: TargetChoice,
    ray: dict[str, Any],
    layers: Annotated[
        str, typer.Option(help="Upstream layers to map, e.g. 4-8,10 (default: 0..L-1).")
    ] = "",
    sites: Annotated[
        str | None,
        typer.Option(
            help="Mapped layers where the whole circuit edits the stream, e.g. 3,7,11 [default: "
            "the best evenly spaced --n-sites on the build prompts]."
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Finish an interrupted map run folder (its config wins).")
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="local (this process) or ray (pip install 'circuitmap[ray]'): "
            + " | ".join(EXECUTORS)
            + "."
        ),
    ] = EXECUTORS[0],
    train_saes: Annotated[
        bool,
        typer.Option(help="Train circuitmap's own SAEs for mapped layers that have none yet."),
    ] = True,
    sae_tokens: Annotated[
        int, typer.Option(help="Training tokens per layer for those SAEs.", min=1000)
    ] = SAETrainConfig.n_tokens,
    out: o.Out = Path("runs"),
    run_dir: Annotated[
        Path | None, typer.Option(help="Exact folder for the run [default: a new one under --out].")
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            help=f"Start a map of {ASK_UNITS} units of work or more without asking (a target "
            "is a unit for its sweep, its selection, each layer and its faithfulness).",
        ),
    ] = False,
) -> None:
    """Map a whole circuit: the gradient Patchscope at every upstream layer of one or several
    targets, SAE features, and feature-ablation effects as weighted edges; writes interactive
    HTML and graph files. Several targets share one graph."""
    from circuitmap.errors import check_choice
    from circuitmap.mapping.run import check_map, finish_map, new_map, resume_map
    from circuitmap.model.load import model_shape

    from .report import print_map

    check_choice("executor", executor, EXECUTORS)
    if resume is not None:
        config, run_dir = resume_map(resume, train_saes), resume
        confirm_size(config, run_dir, yes)
    else:
        n_layers = model_shape(method.model)[0]
        upstream = o.parse_layers(layers, n_layers) if layers else None
        circuit_sites = o.parse_layers(sites, n_layers) if sites else [] if sites == "" else None

        def config_for(chosen_targets: list[Target]) -> MapConfig:
            return MapConfig(
                targets=list({t.id: t for t in chosen_targets}.values()),  # each once, in order
                layers=upstream,
                sites=circuit_sites,
                **vars(method),
                **settings,
            )

        if targets.find_layer is not None:  # everything checked before the model ranks neurons
            check_map(config_for(targets.named()), train_saes)
        config = config_for(targets.resolve(method.model))
        run_dir = new_map(config, out, run_dir, train_saes, lambda c: confirm_size(c, None, yes))
    typer.echo(f"mapping into {run_dir} (resume with --resume {run_dir})", err=True)
    graph, files = finish_map(
        config,
        run_dir,
        executor=executor,
        train_saes=train_saes,
        sae_tokens=sae_tokens,
        ray_options=ray if executor == "ray" else None,
        log=log,
    )
    print_map(graph, config, run_dir)
    for path in files:
        typer.echo(f"wrote {path}")


@app.command("export")
@user_errors
def export_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder.")],
    format: Annotated[
        str, typer.Option(help="Comma-separated: html,graphml,gexf,json,csv,neuronpedia.")
    ] = "html,graphml,gexf,json,csv,neuronpedia",
    node_threshold: Annotated[
        float | None,
        typer.Option(
            help="Share of each layer's influence shown [default: the run's].",
            callback=finite(0, 1, above=True),
        ),
    ] = None,
    edge_threshold: Annotated[
        float | None,
        typer.Option(
            help="Share of the edge weight shown [default: the run's].",
            callback=finite(0, 1, above=True),
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the files [default: the run].")
    ] = None,
    scan: Annotated[
        str | None,
        typer.Option(help="Model id for Neuronpedia's `scan` [default: from the run's model]."),
    ] = None,
) -> None:
    """Re-export a saved map in other formats or with other thresholds, without the model."""
    from circuitmap.mapping.exports import reexport

    formats = tuple(f.strip() for f in format.split(",") if f.strip())
    if not formats:
        raise CircuitmapError(
            "--format names no format: use some of html,graphml,gexf,json,csv,neuronpedia"
        )
    _, files = reexport(run, formats, (node_threshold, edge_threshold), out, scan)
    for path in files:
        typer.echo(f"wrote {path}")


@app.command("view")
@user_errors
def view_cmd(
    run_or_file: Annotated[Path, typer.Argument(help="A map run folder or an HTML file.")],
    serve: Annotated[
        bool, typer.Option(help="Serve it on localhost instead of opening the file.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (1..65535).")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address for --serve; other machines reach it only if you say so.")
    ] = "127.0.0.1",
) -> None:
    """Open a circuit's interactive HTML in the browser (or serve that page alone locally)."""
    from .view import view

    view(run_or_file, serve=serve, port=port, host=host)


@app.command("labels")
@user_errors
def labels_cmd(
    run: Annotated[Path, typer.Argument(help="A finished map run folder.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Imported labels: Neuronpedia export JSON, or JSON/CSV of layer, "
            "feature, label (layers in the SAEs' own numbering)."
        ),
    ] = None,
    min_similarity: Annotated[
        float,
        typer.Option(
            help="Flag features whose causal description shares less than this (0..1).",
            callback=finite(0, 1),
        ),
    ] = 0.1,
    snippets: Annotated[int, typer.Option(help="Top-activating snippets per feature.", min=1)] = 3,
) -> None:
    """Put each feature's observational description (top corpus snippets, imported label) next
    to its causal one (Patchscope of its direction) and flag contradictions; writes labels.csv."""
    from circuitmap.mapping.folder import load_finished_map
    from circuitmap.model.load import load_model
    from circuitmap.validate.labels import read_labels
    from circuitmap.validate.relabel import relabel

    config, _ = load_finished_map(run)  # the run and the label file, before the model loads
    imported = read_labels(labels, config.sae.hook) if labels else {}
    rows, files = relabel(
        run, load_model(config.model), imported, min_similarity, snippets, log=log
    )
    for r in rows:
        mark = "FLAG" if r.flagged else "ok  "
        label = r.imported_label or (r.snippets[0] if r.snippets else "")
        typer.echo(
            f"{mark} L{r.layer} F{r.feature} sim {r.similarity:.2f}: "
            f"label {label!r} | causal {r.causal!r}"
        )
    typer.echo(f"{sum(r.flagged for r in rows)} of {len(rows)} features flagged")
    for path in files:
        typer.echo(f"wrote {path}")

"""`circuitmap map`, `export`, `view` and `labels`: whole circuits and their files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import (
    MapConfig,
    SAETrainConfig,
    Target,
)
from circuitmap.errors import CircuitmapError

from . import options as o
from .app import app, log, user_errors
from .map_options import with_map_settings


@app.command("map")
@user_errors
@o.with_method_options
@with_map_settings
def map_cmd(
    method: o.Method,
    settings: dict[str, Any],
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
    layers: Annotated[
        str, typer.Option(help="Upstream layers to map, e.g. 4-8,10 (default: 0..L-1).")
    ] = "",
    resume: Annotated[
        Path | None, typer.Option(help="Finish an interrupted map run folder (its config wins).")
    ] = None,
    executor: Annotated[
        str, typer.Option(help="local (this process) or ray (pip install 'circuitmap[ray]').")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join, e.g. auto [default: $RAY_ADDRESS or a new one]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ray workers (model copies) [default: one per GPU, or per CPU].", min=1),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option(help="GPUs each Ray worker holds (with --device auto: >1).", min=0)
    ] = 1,
    cpus_per_worker: Annotated[float, typer.Option(help="CPUs each Ray worker holds.", min=0)] = 1,
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
) -> None:
    """Map a whole circuit: the gradient Patchscope at every upstream layer of one or several
    targets, SAE features, and feature-ablation effects as weighted edges; writes interactive
    HTML and graph files. Several targets share one graph."""
    from circuitmap.circuit.run import finish_map, new_map, resume_map
    from circuitmap.config import EXECUTORS, check_choice
    from circuitmap.model.load import model_shape
    from circuitmap.validate.probe import top_neurons

    from .report import print_map

    check_choice("executor", executor, EXECUTORS)
    if resume is not None:
        config, run_dir = resume_map(resume), resume
    else:
        chosen = [o.parse_target(spec) for spec in target or []]
        if target_layer is not None or neuron is not None:
            if target_layer is None or neuron is None:
                raise CircuitmapError("--target-layer and --neuron go together")
            chosen.append(Target(target_layer, neuron))
        if targets_file is not None:
            chosen += o.read_targets(targets_file)
        if find_layer is not None:
            chosen += top_neurons(method.model, find_layer, find_top, positive, negative)
        if not chosen:
            raise CircuitmapError(
                "map needs a target: --target-layer and --neuron, --target L:N, --targets-file, "
                "--find-layer, or --resume RUN"
            )
        config = MapConfig(
            targets=list({t.id: t for t in chosen}.values()),  # each target once, in order
            layers=o.parse_layers(layers, model_shape(method.model)[0]) if layers else None,
            **vars(method),
            **settings,
        )
        run_dir = new_map(config, out, run_dir)
    typer.echo(f"mapping into {run_dir} (resume with --resume {run_dir})", err=True)
    ray_options = dict(
        address=ray_address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
    )
    graph, files = finish_map(
        config,
        run_dir,
        executor=executor,
        train_saes=train_saes,
        sae_tokens=sae_tokens,
        ray_options=ray_options if executor == "ray" else None,
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
            help="Share of each layer's influence shown [default: the run's].", min=0, max=1
        ),
    ] = None,
    edge_threshold: Annotated[
        float | None,
        typer.Option(help="Share of the edge weight shown [default: the run's].", min=0, max=1),
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
    from circuitmap.circuit.run import reexport

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
        float, typer.Option(help="Flag features whose causal description shares less than this.")
    ] = 0.1,
    snippets: Annotated[int, typer.Option(help="Top-activating snippets per feature.", min=1)] = 3,
) -> None:
    """Put each feature's observational description (top corpus snippets, imported label) next
    to its causal one (Patchscope of its direction) and flag contradictions; writes labels.csv."""
    from circuitmap.circuit.driver import load_map_config
    from circuitmap.circuit.run import relabel
    from circuitmap.model.load import load_model
    from circuitmap.validate.labels import read_labels

    config = load_map_config(run)
    imported = read_labels(labels, config.sae.hook) if labels else {}  # before the model loads
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

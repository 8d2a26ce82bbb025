"""`circuitmap`: a thin typer front over the circuitmap Python API."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import MapConfig, ModelConfig, OptimConfig, SAESource, SAETrainConfig, Target
from circuitmap.errors import CircuitmapError

from . import options as o

try:  # typer vendors click from 0.22 on; its exceptions are not click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer with click itself
    from click import exceptions as click_errors

app = typer.Typer(
    help="Map the circuit behind one MLP neuron: gradient Patchscope, SAE features, graphs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold [ray] and [default: ...] literally
)
_OPT = OptimConfig
_MAP = MapConfig


@app.callback()
def root() -> None:
    """circuitmap: explain a neuron, train SAEs, map and view circuits (see each --help)."""


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a CircuitmapError into ``error: ...`` on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CircuitmapError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _log(message: str) -> None:
    typer.echo(message, err=True)


@app.command("explain")
@user_errors
@o.with_method_options
def explain_cmd(
    target_layer: o.TargetLayer,
    neuron: o.Neuron,
    layer: Annotated[int, typer.Option(help="Upstream layer l < L whose resid_pre is optimised.")],
    method: o.Method,
    out: o.Out = Path("runs"),
) -> None:
    """Explain one neuron from one upstream layer: Mean Vector, gradient ascent, SAE features,
    contrastive Patchscope. Without an SAE for the layer the SAE step is skipped with a note."""
    from circuitmap.config import ExplainConfig
    from circuitmap.files.storage import writable_dir
    from circuitmap.method.explain import explain, save_explain

    from .report import print_explain

    config = ExplainConfig(target_layer=target_layer, neuron=neuron, layer=layer, **vars(method))
    writable_dir(out, "output folder")  # before the work, so a finished run is never lost
    result = explain(config, log=_log)
    print_explain(result, save_explain(result, out))


@app.command("map")
@user_errors
@o.with_method_options
def map_cmd(
    method: o.Method,
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
    select: Annotated[
        str,
        typer.Option(
            help="How each layer's circuit features are chosen: attribution (what they do to "
            "the target on the build prompts) or activation (the report's top-k on X)."
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
    ] = None,
    ablation: Annotated[
        str,
        typer.Option(
            help="What removing a feature means: silent (its mean where the target is silent), "
            "zero, or mean (its corpus mean)."
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
    ] = 0,
    controls: Annotated[
        int,
        typer.Option(
            help="Control features per layer, matched in activation level (p-values).", min=0
        ),
    ] = _MAP.controls,
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
    from circuitmap.circuit.driver import check_targets, load_map_config, start_map
    from circuitmap.circuit.executors import make_executor
    from circuitmap.circuit.run import run_map
    from circuitmap.config import EXECUTORS, check_choice
    from circuitmap.files.storage import new_run_dir, writable_dir
    from circuitmap.method.patchscope import check_prompt
    from circuitmap.model.load import load_model, load_tokenizer, model_shape
    from circuitmap.sae.store import check_sae_folders
    from circuitmap.sae.train import missing_own_saes, train_missing_saes
    from circuitmap.validate.probe import read_prompt_set

    from .report import print_map

    check_choice("executor", executor, EXECUTORS)
    if resume is not None:
        config = load_map_config(resume)
        run_dir = resume
        shape = model_shape(config.model)
    else:
        if run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir()):
            raise CircuitmapError(
                f"run folder {str(run_dir)!r} is not empty: use --resume to finish it"
            )
        shape = model_shape(method.model)
        chosen = [o.parse_target(spec) for spec in target or []]
        if target_layer is not None or neuron is not None:
            if target_layer is None or neuron is None:
                raise CircuitmapError("--target-layer and --neuron go together")
            chosen.append(Target(target_layer, neuron))
        if targets_file is not None:
            chosen += o.read_targets(targets_file)
        if find_layer is not None:
            chosen += _found_targets(method.model, find_layer, find_top, positive, negative)
        if not chosen:
            raise CircuitmapError(
                "map needs a target: --target-layer and --neuron, --target L:N, --targets-file, "
                "--find-layer, or --resume RUN"
            )
        config = MapConfig(
            targets=list({t.id: t for t in chosen}.values()),  # each target once, in order
            **vars(method),
            select=select,
            max_features=max_features,
            share=share,
            prompts=prompts,
            ablation=ablation,
            n_prompts=n_prompts,
            effect_prompts=effect_prompts,
            n_heldout=n_heldout,
            faithfulness=faithfulness,
            skip_edges=skip_edges,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            restarts=restarts,
            controls=controls,
        )
        if layers:
            config.layers = o.parse_layers(layers, shape[0])
    check_targets(config, shape)
    check_prompt(load_tokenizer(config.model), config.patchscope)
    check_sae_folders(config.sae, config.all_layers())
    if config.prompts:
        read_prompt_set(config.prompts)  # readable, and not empty
    if run_dir is None:
        run_dir = new_run_dir(
            writable_dir(out, "output folder"), "map-" + "-".join(t.id for t in config.targets[:3])
        )
    writable_dir(run_dir, "run folder")
    if resume is None:
        start_map(config, run_dir)  # from here on, --resume can finish whatever fails
    missing = missing_own_saes(config)
    if missing and not train_saes:
        raise CircuitmapError(
            f"no SAE for resid_pre layers {missing}: make them with `circuitmap sae train "
            f"--layers {','.join(map(str, missing))}`, drop --no-train-saes, or pass "
            "--sae-release/--sae-id or --sae-path"
        )
    lm = None
    if missing:
        lm = load_model(config.model)
        train_missing_saes(lm, config, SAETrainConfig(n_tokens=sae_tokens), log=_log)
    typer.echo(f"mapping into {run_dir} (resume with --resume {run_dir})", err=True)
    pool = make_executor(
        executor,
        config,
        lm if executor == "local" else None,
        address=ray_address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
    )
    try:
        graph, files = run_map(config, run_dir, pool, log=_log)
    finally:
        pool.close()
    print_map(graph, config, run_dir)
    for path in files:
        typer.echo(f"wrote {path}")


def _found_targets(
    model_config: ModelConfig, layer: int, top: int, positive: str, negative: str
) -> list[Target]:
    """The ``top`` neurons of ``layer`` that `circuitmap find` ranks first."""
    from circuitmap.validate.probe import rank_neurons

    *_, scores = rank_neurons(model_config, layer, positive, negative, top)
    return [Target(layer, s.neuron) for s in scores]


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


@app.command("probe")
@user_errors
@o.with_sae_options
@o.with_model_options
def probe_cmd(
    model_config: ModelConfig,
    sae: SAESource,
    target_layer: o.TargetLayer,
    neuron: o.Neuron,
    set: Annotated[
        list[str] | None,
        typer.Option(
            help="Prompt set: a file with one prompt a line, or a shipped set "
            "(math_notation, licences, definitions, narrative). Repeat; default: all four."
        ),
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option(help="Also probe SAE feature LAYER:INDEX (repeatable).")
    ] = None,
) -> None:
    """How the neuron (and chosen SAE features) fire on prompt sets, and the activation
    threshold that separates the first two sets."""
    from circuitmap.model.load import load_model
    from circuitmap.sae.store import SAEStore
    from circuitmap.validate.probe import (
        EXAMPLE_SETS,
        feature_maxima,
        neuron_maxima,
        read_prompt_set,
    )

    from .report import print_probe

    sets = [read_prompt_set(spec) for spec in (set or EXAMPLE_SETS)]
    lm = load_model(model_config)
    lm.check_target(Target(target_layer, neuron), [])
    columns = {
        f"L{target_layer} neuron {neuron}": [
            neuron_maxima(lm, p, target_layer)[:, neuron] for _, p in sets
        ]
    }
    saes = SAEStore.for_model(lm, sae, model_config.cache_dir)
    for spec in feature or []:
        layer, index = o.parse_feature(spec, lm.n_layers)
        layer_sae = saes.layer(layer)
        o.check_feature(index, layer_sae.sae.cfg.d_sae)
        columns[f"L{layer} feature {index}"] = [
            feature_maxima(lm, p, layer_sae, [index])[:, 0] for _, p in sets
        ]
    print_probe([name for name, _ in sets], columns)


@app.command("find")
@user_errors
@o.with_model_options
def find_cmd(
    model_config: ModelConfig,
    layer: Annotated[int, typer.Option(help="MLP layer whose neurons are ranked.")],
    positive: Annotated[
        str, typer.Option(help="Prompt set the neuron should fire on.")
    ] = "definitions",
    negative: Annotated[str, typer.Option(help="Prompt set it should not fire on.")] = "licences",
    top: Annotated[int, typer.Option(help="Neurons to list.", min=1)] = 10,
) -> None:
    """Rank the neurons of a layer by how much more they fire on one prompt set than another."""
    from circuitmap.validate.probe import rank_neurons

    pos_name, neg_name, scores = rank_neurons(model_config, layer, positive, negative, top)
    typer.echo(f"layer {layer} neurons firing on {pos_name} more than on {neg_name}:")
    typer.echo("neuron    score  mean(+)  mean(-)")
    for s in scores:
        typer.echo(f"{s.neuron:>6} {s.score:8.2f} {s.positive_mean:8.3f} {s.negative_mean:8.3f}")


@app.command("steer")
@user_errors
@o.with_sae_options
@o.with_model_options
def steer_cmd(
    model_config: ModelConfig,
    sae: SAESource,
    prompt: Annotated[
        str, typer.Option(help="Unrelated prompt to continue.")
    ] = "My favourite holiday was",
    layer: Annotated[int | None, typer.Option(help="Feature steering: resid_pre layer.")] = None,
    feature: Annotated[
        int | None, typer.Option(help="Feature steering: SAE feature index.")
    ] = None,
    strengths: Annotated[
        str, typer.Option(help="Feature steering: added length in units of a typical resid_pre.")
    ] = "0,0.25,0.5,1,2",
    target_layer: Annotated[int | None, typer.Option(help="Neuron clamping: MLP layer.")] = None,
    neuron: Annotated[int | None, typer.Option(help="Neuron clamping: neuron index.")] = None,
    clamp: Annotated[
        str, typer.Option(help="Neuron clamping: values as multiples of its corpus maximum.")
    ] = "0,5,20,100",
    max_new_tokens: o.MaxNewTokens = 20,
    dataset: o.Dataset = None,
) -> None:
    """Intervene during generation: add a feature's direction (--layer/--feature) or clamp a
    neuron (--target-layer/--neuron), and print the steered text next to the clean text."""
    from circuitmap.config import CorpusConfig
    from circuitmap.files.corpus import corpus_texts
    from circuitmap.model.load import cache_root, load_model
    from circuitmap.sae.store import SAEStore
    from circuitmap.validate.steer import feature_steering, neuron_clamping

    by_feature = layer is not None and feature is not None
    if by_feature == (target_layer is not None and neuron is not None):
        raise CircuitmapError(
            "steer needs either --layer and --feature, or --target-layer and --neuron"
        )
    lm = load_model(model_config)
    texts = corpus_texts(CorpusConfig(dataset=dataset), cache_root(model_config.cache_dir))
    if by_feature:
        layer_sae = SAEStore.for_model(lm, sae, model_config.cache_dir).layer(layer)
        o.check_feature(feature, layer_sae.sae.cfg.d_sae)
        rows = feature_steering(
            lm, layer_sae, feature, prompt, o.parse_floats(strengths), texts, max_new_tokens
        )
    else:
        target = Target(target_layer, neuron)
        lm.check_target(target, [])
        rows = neuron_clamping(lm, target, prompt, o.parse_floats(clamp), texts, max_new_tokens)
    typer.echo(f"prompt: {prompt!r}")
    for label, text in rows:
        typer.echo(f"{label:>40}: {text!r}")


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
        run, load_model(config.model), imported, min_similarity, snippets, log=_log
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


validate_app = typer.Typer(
    help="Validate a circuit: faithfulness, random restarts, necessity against controls.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(validate_app, name="validate")


@validate_app.command("restarts")
@user_errors
@o.with_sae_options
@o.with_model_options
def restarts_cmd(
    model_config: ModelConfig,
    sae: SAESource,
    target_layer: o.TargetLayer,
    neuron: o.Neuron,
    layers: Annotated[str, typer.Option(help="Upstream layers, e.g. 4,8 (default: 0..L-1).")] = "",
    restarts: Annotated[
        int, typer.Option(help="Random starts besides the Mean Vector.", min=1)
    ] = 8,
    top_k: o.TopK = 5,
    dataset: o.Dataset = None,
    lr: o.Lr = _OPT.lr,
    lr_units: o.LrUnits = _OPT.lr_units,
    steps: o.Steps = _OPT.steps,
    seed: o.Seed = _OPT.seed,
    norm_constraint: o.NormConstraint = _OPT.norm_constraint,
) -> None:
    """Optimise from the Mean Vector and random starts at each layer: does the same SAE feature
    come back? Prints top-1 agreement, Jaccard of top-k sets and the activation spread."""
    from circuitmap.config import CorpusConfig
    from circuitmap.files.corpus import corpus_texts
    from circuitmap.method.baseline import compute_baseline
    from circuitmap.method.restarts import restart_report
    from circuitmap.model.load import cache_root, load_model
    from circuitmap.sae.store import SAEStore

    lm = load_model(model_config)
    chosen = o.parse_layers(layers, lm.n_layers) if layers else list(range(target_layer))
    lm.check_target(Target(target_layer, neuron), chosen)
    cache = cache_root(model_config.cache_dir)
    saes = SAEStore.for_model(lm, sae, model_config.cache_dir).layers(chosen)
    base = compute_baseline(lm, corpus_texts(CorpusConfig(dataset=dataset), cache), chosen)
    optim = o.optim_config(lr, lr_units, steps, seed, "mean", norm_constraint)
    typer.echo(
        f"{'layer':>5} {'top-1 agree':>11} {'jaccard':>8}  activation min..max   reference top-k"
    )
    for layer in chosen:
        r = restart_report(
            lm,
            saes[layer],
            target=Target(target_layer, neuron),
            mean=base.means[layer],
            config=optim,
            n_restarts=restarts,
            top_k=top_k,
            norm_range=base.norm_ranges[layer],
        )
        lo, hi = r.activation_spread
        top = ", ".join(f"F{f} ({a:.0%})" for f, a in r.agreement.items())
        typer.echo(
            f"{layer:>5} {r.top1_agreement:>11.0%} {r.jaccard:>8.2f}  {lo:>9.2f}..{hi:<9.2f}  {top}"
        )


@validate_app.command("faithfulness")
@user_errors
def faithfulness_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder.")],
) -> None:
    """How well the map's circuit explains its target on held-out prompts: completeness,
    sufficiency, the error nodes' share and the random-feature floor, per layer and with all
    layers edited at once. Measures what the map has not measured yet (a map made with
    --no-faithfulness), then adds the figures to its graph and exports."""
    import dataclasses

    from circuitmap.circuit.driver import load_map_config
    from circuitmap.circuit.run import run_map

    from .report import print_map

    config = dataclasses.replace(load_map_config(run), faithfulness=True)
    graph, _ = run_map(config, run, log=_log)
    print_map(graph, config, run)


@validate_app.command("necessity")
@user_errors
def necessity_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder (made with --controls > 0).")],
) -> None:
    """Is each node needed on real text? Its effect on the target when removed on the build
    prompts against control features of similar activation level: p-value, effect size,
    bootstrap interval."""
    from circuitmap.files.export import GRAPH_FILE, load_graph
    from circuitmap.files.storage import check_run_dir

    graph = load_graph(check_run_dir(run) / GRAPH_FILE)
    rows = [(n, d) for n, d in graph.nodes(data=True) if "p_value" in d]
    if not rows:
        raise CircuitmapError(f"{str(run)!r} has no control statistics: map it with --controls 5")
    typer.echo(
        f"{'feature':<12}{'effect':>10}{'95% interval':>22}{'controls':>10}{'p':>7}{'size':>7}"
    )
    for node, d in sorted(rows, key=lambda item: item[1].get("p_value", 1.0)):
        interval = f"[{d['ci_low']:.2f}, {d['ci_high']:.2f}]"
        typer.echo(
            f"{node:<12}{d['effect']:>10.3f}{interval:>22}{d['control_mean']:>10.3f}"
            f"{d['p_value']:>7.2f}{d['effect_size']:>7.1f}"
        )


sae_app = typer.Typer(
    help="Train, list and inspect residual-stream SAEs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(sae_app, name="sae")


@sae_app.command("train")
@user_errors
@o.with_model_options
def sae_train_cmd(
    model_config: ModelConfig,
    layers: Annotated[
        str, typer.Option(help="resid_pre layers, e.g. 0-11 or 4,8 (default: all layers).")
    ] = "",
    dataset: o.Dataset = None,
    split: o.Split = "train",
    text_column: o.TextColumn = "text",
    sae_dir: o.SaeDir = None,
    architecture: Annotated[str, typer.Option(help="topk or jumprelu.")] = "topk",
    width: Annotated[int, typer.Option(help="Latents per SAE.", min=1)] = 2048,
    k: Annotated[int, typer.Option(help="TopK: active latents per token.", min=1)] = 64,
    l0_coefficient: Annotated[float, typer.Option(help="JumpReLU sparsity penalty.")] = 1.0,
    n_tokens: Annotated[int, typer.Option(help="Training tokens per layer.", min=1)] = 200_000,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Annotated[bool, typer.Option(help="Retrain layers that already have an SAE.")] = False,
) -> None:
    """Train one SAE per resid_pre layer on the corpus (one activation pass for all layers) and
    cache it where every command finds it. Finished layers are kept if the run is interrupted."""
    from circuitmap.config import SAETrainConfig
    from circuitmap.files.corpus import load_corpus
    from circuitmap.model.load import cache_root, load_model
    from circuitmap.sae.store import own_sae_root
    from circuitmap.sae.train import train_layer_saes

    lm = load_model(model_config)
    chosen = o.parse_layers(layers, lm.n_layers) if layers else list(range(lm.n_layers))
    cache = cache_root(model_config.cache_dir)
    root = own_sae_root(cache, lm.model_id, o.sae_options(sae_dir=sae_dir))
    corpus = load_corpus(o.corpus_config(dataset, split, text_column, 1, 1), cache)
    train_config = SAETrainConfig(
        architecture=architecture,
        width=width,
        k=k,
        l0_coefficient=l0_coefficient,
        n_tokens=n_tokens,
        lr=lr,
        seed=seed,
    )
    done = train_layer_saes(
        lm,
        corpus["text"],
        chosen,
        train_config,
        root,
        force=force,
        log=typer.echo,
    )
    skipped = sorted(set(chosen) - set(done))
    if skipped:
        typer.echo(f"layers {skipped} already have SAEs in {root} (use --force to retrain)")


@sae_app.command("info")
@user_errors
def sae_info_cmd(
    model: o.Model = "embedded",
    cache_dir: o.CacheDir = None,
    sae_dir: o.SaeDir = None,
) -> None:
    """List circuitmap's SAEs for a model with their quality figures (held-out corpus text)."""
    from circuitmap.model.load import cache_root, model_id_for
    from circuitmap.sae.store import list_own_saes, own_sae_root

    from .report import print_sae_table

    source = o.sae_options(sae_dir=sae_dir)
    root = own_sae_root(cache_root(cache_dir), model_id_for(model), source)
    print_sae_table(root, list_own_saes(root))


def main() -> None:
    """The `circuitmap` command: a usage mistake (bad option value, unknown option) is one
    ``error:`` line and exit 2 like every other user error, not a boxed usage message."""
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        code = 0
    except click_errors.UsageError as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        code = 2
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)

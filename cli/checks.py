"""`circuitmap explain`, `probe`, `find`, `steer` and `validate ...`: one layer of the method, and
the checks of what a map claims."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated

import typer

from circuitmap.config import (
    ModelConfig,
    OptimConfig,
    SAESource,
    Target,
)
from circuitmap.errors import CircuitmapError

from . import options as o
from .app import app, log, user_errors, validate_app

_OPT = OptimConfig


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
    from circuitmap.method.explain import check_explain, explain, save_explain
    from circuitmap.model.load import load_model

    from .report import print_explain

    config = ExplainConfig(target_layer=target_layer, neuron=neuron, layer=layer, **vars(method))
    check_explain(config)
    writable_dir(out, "output folder")  # before the work, so a finished run is never lost
    log(f"loading model {config.model.name} ...")
    result = explain(config, load_model(config.model), log=log)
    print_explain(result, save_explain(result, out))


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
    from circuitmap.files.prompt_sets import EXAMPLE_SETS, read_prompt_set
    from circuitmap.model.load import check_target, load_model, model_shape
    from circuitmap.sae.store import SAEStore
    from circuitmap.validate.probe import feature_maxima, neuron_maxima

    from .report import print_probe

    sets = [read_prompt_set(spec) for spec in (set or EXAMPLE_SETS)]
    shape = model_shape(model_config)
    check_target(shape, Target(target_layer, neuron), [])
    saes = SAEStore.for_config(model_config, sae)
    features = []  # each checked against its SAE before the model's weights load
    for spec in feature or []:
        layer, index = o.parse_feature(spec, shape[0])
        o.check_feature(index, saes.layer(layer).sae.cfg.d_sae)
        features.append((layer, index))
    lm = load_model(model_config)
    columns = {
        f"L{target_layer} neuron {neuron}": [
            neuron_maxima(lm, p, target_layer)[:, neuron] for _, p in sets
        ]
    }
    for layer, index in features:
        columns[f"L{layer} feature {index}"] = [
            feature_maxima(lm, p, saes.layer(layer), [index])[:, 0] for _, p in sets
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
    from circuitmap.model.load import cache_root, check_target, load_model, model_shape
    from circuitmap.sae.store import SAEStore
    from circuitmap.validate.steer import feature_steering, neuron_clamping

    by_feature = layer is not None and feature is not None
    if by_feature == (target_layer is not None and neuron is not None):
        raise CircuitmapError(
            "steer needs either --layer and --feature, or --target-layer and --neuron"
        )
    values = (
        o.parse_floats(strengths, "--strengths") if by_feature else o.parse_floats(clamp, "--clamp")
    )
    if by_feature:  # the feature, or the neuron, checked before the model's weights load
        layer_sae = SAEStore.for_config(model_config, sae).layer(layer)
        o.check_feature(feature, layer_sae.sae.cfg.d_sae)
    else:
        target = Target(target_layer, neuron)
        check_target(model_shape(model_config), target, [])
    texts = corpus_texts(CorpusConfig(dataset=dataset), cache_root(model_config.cache_dir))
    lm = load_model(model_config)
    if by_feature:
        rows = feature_steering(lm, layer_sae, feature, prompt, values, texts, max_new_tokens)
    else:
        rows = neuron_clamping(lm, target, prompt, values, texts, max_new_tokens)
    typer.echo(f"prompt: {prompt!r}")
    for label, text in rows:
        typer.echo(f"{label:>40}: {text!r}")


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
        int, typer.Option(help="Starts from corpus vectors besides the Mean Vector.", min=1)
    ] = 8,
    top_k: o.TopK = 5,
    dataset: o.Dataset = None,
    lr: o.Lr = _OPT.lr,
    lr_units: o.LrUnits = _OPT.lr_units,
    steps: o.Steps = _OPT.steps,
    seed: o.Seed = _OPT.seed,
    norm_constraint: o.NormConstraint = _OPT.norm_constraint,
    space: o.Space = _OPT.space,
    level: o.Level = _OPT.level or 0.0,
    sparsity: o.Sparsity = _OPT.sparsity,
    report_setting: o.ReportSetting = False,
) -> None:
    """Optimise from the Mean Vector and corpus vectors at each layer: does the same SAE feature
    come back? Prints, on the features each ascent adds to its start: top-1 agreement, Jaccard of
    top-k sets, the consensus, and the activation spread as multiples of the corpus maximum."""
    from circuitmap.config import CorpusConfig
    from circuitmap.files.corpus import corpus_texts
    from circuitmap.method.restarts import restart_layers
    from circuitmap.model.load import cache_root, load_model
    from circuitmap.sae.store import SAEStore

    lm = load_model(model_config)
    target = Target(target_layer, neuron)
    chosen = o.parse_layers(layers, lm.n_layers) if layers else list(range(target_layer))
    lm.check_target(target, chosen)
    saes = SAEStore.for_model(lm, sae, model_config.cache_dir)
    saes.layers(chosen)  # every SAE is there, before the work
    texts = corpus_texts(CorpusConfig(dataset=dataset), cache_root(model_config.cache_dir))
    optim = o.optim_config(
        lr, lr_units, steps, seed, "mean", norm_constraint, space, level, sparsity, report_setting
    )
    reports = restart_layers(lm, saes, target, chosen, texts, optim, restarts, top_k)
    typer.echo(
        f"{'layer':>5} {'top-1 agree':>11} {'jaccard':>8}  {'x corpus max':>14}  consensus  "
        "(X's top-k: share of restarts)"
    )
    for r in reports:
        lo, hi = r.level_spread if r.level_spread else (None, None)
        spread = "–" if lo is None else f"{lo:.2f}..{hi:.2f}"
        consensus = ",".join(f"F{f}" for f in r.consensus) or "–"
        top = ", ".join(f"F{f} ({a:.0%})" for f, a in r.agreement.items())
        typer.echo(
            f"{r.layer:>5} {r.top1_agreement:>11.0%} {r.jaccard:>8.2f}  {spread:>14}  "
            f"{consensus}  ({top})"
        )
    agreements = [r.top1_agreement for r in reports if r.top1_agreement is not None]
    typer.echo(f"median top-1 agreement: {statistics.median(agreements):.0%}")


@validate_app.command("faithfulness")
@user_errors
def faithfulness_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder.")],
    curve: Annotated[
        bool,
        typer.Option(help="Also completeness and sufficiency at 5, 10, 20, 40 features a layer."),
    ] = True,
) -> None:
    """How well the map's circuit explains its target on held-out prompts: completeness,
    sufficiency, the error nodes' share and the random-feature floor, per layer and with all
    layers edited at once, and the curve. Measures what the map has not measured yet (a map
    made with --no-faithfulness, or without the curve), then adds the figures to its graph and
    exports."""
    import dataclasses

    from circuitmap.mapping.folder import load_map_config
    from circuitmap.mapping.run import run_map

    from .report import print_map

    config = dataclasses.replace(load_map_config(run), faithfulness=True, curve=curve)
    graph, _ = run_map(config, run, log=log)
    print_map(graph, config, run)


@validate_app.command("necessity")
@user_errors
def necessity_cmd(
    run: Annotated[Path, typer.Argument(help="A map run folder (made with --controls > 0).")],
) -> None:
    """Is each node needed on real text? Its effect on the target when removed on the build
    prompts against control features of similar activation level: p-value, effect size,
    bootstrap interval."""
    from circuitmap.files.layout import GRAPH_FILE
    from circuitmap.files.storage import check_run_dir
    from circuitmap.graph.export import load_graph

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

"""Terminal output of the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import typer

from circuitmap.method.explain import ExplainResult
from circuitmap.sae.features import FeatureReport


def print_explain(result: ExplainResult, run_dir: Path) -> None:
    c = result.config
    traj = result.trajectory
    every = max(1, len(traj) // 10)
    shown = " → ".join(f"{a:.2f}" for a in traj[::every])
    lo, hi = result.norm_range
    typer.echo(
        f"\n{c.model.name}: target layer {c.target_layer} neuron {c.neuron}, "
        f"X injected at resid_pre of layer {c.layer}"
    )
    typer.echo(f"activation trajectory (every {every} steps): {shown}")
    typer.echo(
        f"target activation: {result.mean_activation:.2f} with the Mean Vector → "
        f"{result.final_activation:.2f} with optimised X "
        f"(corpus max {result.corpus_max:.2f} over {len(result.texts)} texts)"
    )
    typer.echo(
        f"‖X‖ {result.vector.norm():.1f}, ‖Mean Vector‖ {result.mean_vector.norm():.1f}, "
        f"corpus resid norms {lo:.1f}–{hi:.1f}"
    )
    if result.features:
        print_features(result.features)
    typer.echo(f"Patchscope, contrastive (α={c.patchscope.alpha}): {result.contrastive_text!r}")
    typer.echo(f"Patchscope, plain:                  {result.plain_text!r}")
    typer.echo(f"run saved to {run_dir}")


def print_features(report: FeatureReport) -> None:
    typer.echo(f"SAE features ({report.sae_origin}):")
    for title, rows in (
        ("top on X", report.top),
        ("top on the Mean Vector", report.top_mean),
        ("added by the optimisation", report.added),
    ):
        typer.echo(f"  {title}:")
        for f in rows:
            link = f"  {f.neuronpedia_url}" if f.neuronpedia_url else ""
            acts = f"X {f.activation:9.2f}  mean {f.mean_activation:9.2f}"
            typer.echo(f"    feature {f.index:>6}  {acts}{link}")


def print_sae_table(root: Path, saes: list[tuple[int, Path, dict[str, Any] | None]]) -> None:
    if not saes:
        typer.echo(f"no SAEs in {root}: make them with `circuitmap sae train --layers ...`")
        return
    typer.echo(f"SAEs in {root} (quality on held-out corpus text):")
    typer.echo("layer  explained var   L0     dead   spliced loss  tokens")
    for layer, _folder, q in saes:
        if q is None:
            typer.echo(f"{layer:>5}  (no quality figures)")
            continue
        ev, l0, dead = q["explained_variance"], q["l0"], q["dead_fraction"]
        typer.echo(
            f"{layer:>5}  {ev:13.3f}  {l0:5.1f}  {dead:6.1%}"
            f"  {q['loss_increase']:+11.1%}  {q['train_tokens']:>6}"
        )


def print_probe(set_names: list[str], columns: dict[str, list[torch.Tensor]]) -> None:
    """Per probed unit: its largest activation per prompt, summarised per set, and the
    threshold separating the first two sets."""
    from circuitmap.validate.probe import separation

    for unit, per_set in columns.items():
        typer.echo(f"\n{unit} (largest activation over each prompt's tokens)")
        typer.echo(f"{'set':<16}{'n':>4}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}")
        for name, acts in zip(set_names, per_set, strict=True):
            std = acts.std().item() if len(acts) > 1 else 0.0
            typer.echo(
                f"{name:<16}{len(acts):>4}{acts.mean():>10.3f}{std:>10.3f}{acts.min():>10.3f}{acts.max():>10.3f}"
            )
        if len(per_set) >= 2:
            sep = separation(per_set[0], per_set[1])
            typer.echo(
                f"threshold {sep.threshold:.3f} separates {set_names[0]} from {set_names[1]} "
                f"with accuracy {sep.accuracy:.0%}"
            )


def _figure(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


def _curve(f: Any) -> str:
    """The faithfulness curve, one "k: completeness/sufficiency" a cut."""
    cuts = sorted({int(k) for x in f.layers.values() for k in x.curve})
    return (
        ", ".join(
            f"{k}: {_figure(f.curve_mean(k, 'completeness')).strip()}/"
            f"{_figure(f.curve_mean(k, 'sufficiency')).strip()}"
            for k in cuts
        )
        + " (completeness/sufficiency)"
    )


def _print_whole(target: str, prompts: int, w: Any, build_fit: float | None) -> None:
    """The whole circuit's figures: the headline of a map (``build_fit``: its F(C) on the build
    prompts that chose it)."""
    curve = ", ".join(f"{k}: {_figure(v).strip()}" for k, v in w.curve.items())
    typer.echo(
        f"\n{target}: whole circuit at sites {', '.join(map(str, w.sites))}, "
        f"{w.feature_nodes} feature nodes and {w.error_nodes} error nodes, every site edited "
        f"at once on {prompts} held-out prompts (clean {w.clean:.2f}, empty {w.empty:.2f}):\n"
        f"  F(C) {_figure(w.circuit).strip()}; without its error nodes "
        f"{_figure(w.no_error).strip()}; F(M\\C) {_figure(w.complement).strip()}; random "
        f"features {_figure(w.random).strip()}; on the build prompts that chose it F(C) "
        f"{_figure(build_fit).strip()}\n"
        f"  F of the best k features (error nodes kept): {curve}; area "
        f"{_figure(w.area).strip()}"
    )


def print_map(graph: Any, config: Any, run_dir: Path) -> None:
    """The circuit's size, each target's whole-circuit faithfulness on its held-out prompts,
    the per-layer diagnostics, and the strongest chain through the whole circuit."""
    from circuitmap.circuit.faithfulness import Faithfulness
    from circuitmap.circuit.selection import Selection
    from circuitmap.circuit.sweep import TargetSweep
    from circuitmap.files.layout import (
        FAITHFULNESS_FILE,
        GRAPH_FILE,
        SELECTION_FILE,
        SWEEP_FILE,
        target_dir,
    )
    from circuitmap.graph.export import load_graph
    from circuitmap.graph.prune import circuit_subgraph, prune, strongest_chain

    g = graph.graph
    typer.echo(
        f"\ncircuit: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges shown "
        f"({g['nodes_hidden']} of {g['nodes_total']} nodes and {g['edges_hidden']} of "
        f"{g['edges_total']} edges below the {g['node_threshold']}/{g['edge_threshold']} "
        "cumulative thresholds hidden)"
    )
    for t in config.targets:
        folder = target_dir(run_dir, t)
        if (folder / FAITHFULNESS_FILE).exists():
            f = Faithfulness.load(folder)
            selection = Selection.load(folder)
            if f.whole is not None:
                fit = None if selection.circuit is None else selection.circuit.build_fit
                _print_whole(t.id, f.n_prompts, f.whole, fit)
            typer.echo(
                f"\nper-layer diagnostics of {t.id} on {f.n_prompts} held-out prompts (clean "
                f"{f.clean:.2f}; each layer edited alone):\n"
                "layer features completeness sufficiency (no error) error share | random: "
                "completeness sufficiency | top-5 agreement"
            )
            for layer, x in sorted(f.layers.items()):
                top = [a for a in selection.layers[layer].agreement[:5] if a is not None]
                agreement = f"{sum(top) / len(top):>16.0%}" if top else f"{'n/a':>16}"
                typer.echo(
                    f"{layer:>5} {x.features:>8} {_figure(x.completeness):>12} "
                    f"{_figure(x.sufficiency):>11} {_figure(x.sufficiency_no_error):>10} "
                    f"{_figure(x.error_share):>11} | {_figure(x.random_completeness):>20} "
                    f"{_figure(x.random_sufficiency):>11} | {agreement}"
                )
            typer.echo(
                f" mean {'':>8} {_figure(f.mean('completeness')):>12} "
                f"{_figure(f.mean('sufficiency')):>11} "
                f"{_figure(f.mean('sufficiency_no_error')):>10} "
                f"{_figure(f.mean('error_share')):>11} | "
                f"{_figure(f.mean('random_completeness')):>20} "
                f"{_figure(f.mean('random_sufficiency')):>11}"
            )
            if f.has_curve:
                typer.echo("the ranking cut at k features a layer, mean of layers: " + _curve(f))
            typer.echo(
                f"all layers edited at once: sufficiency {_figure(f.joint_sufficiency).strip()} "
                f"(random features: {_figure(f.joint_random_sufficiency).strip()})"
            )
        if (folder / SELECTION_FILE).exists() and (folder / SWEEP_FILE).exists():
            _print_x(t.id, TargetSweep.load(folder), Selection.load(folder))
        own = prune(load_graph(folder / GRAPH_FILE), config.node_threshold, config.edge_threshold)
        chain = strongest_chain(circuit_subgraph(own), t.id)
        if len(chain) > 1:
            typer.echo("strongest chain: " + " → ".join(own.nodes[n]["label"] for n in chain))
        else:
            typer.echo(
                "strongest chain: no chain of features passes the thresholds, only error nodes"
            )


def _print_x(target: str, sweep: Any, selection: Any) -> None:
    """Each layer's optimised X against its circuit: the level X reaches, its restarts'
    agreement and its top features' share among the layer's attribution top 10."""
    typer.echo(
        f"\ngradient Patchscope of {target} against its circuit:\n"
        "layer  x corpus max  restart top-1  jaccard  X's top 5 in attribution top 10  "
        "(attribution ranks)"
    )
    for layer, search in sorted(sweep.layers.items()):
        chosen = selection.layers[layer]
        agree = "–" if search.top1_agreement is None else f"{search.top1_agreement:.0%}"
        ranks = ",".join(map(str, chosen.x_ranks)) or "–"
        typer.echo(
            f"{layer:>5} {_figure(search.level):>13} {agree:>14} {_figure(search.jaccard):>8} "
            f"{_figure(chosen.x_overlap):>28}  ({ranks})"
        )

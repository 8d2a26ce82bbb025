"""Terminal output of the commands."""

from __future__ import annotations

from pathlib import Path

import typer

from circuitmap.explain import ExplainResult


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
    typer.echo(f"Patchscope, contrastive (α={c.patchscope.alpha}): {result.contrastive_text!r}")
    typer.echo(f"Patchscope, plain:                  {result.plain_text!r}")
    typer.echo(f"run saved to {run_dir}")

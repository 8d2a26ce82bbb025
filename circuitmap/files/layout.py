"""Every file name of a run folder, in one place. An explain run holds ``config.json``,
``result.json`` and ``tensors.safetensors``; a map run::

    config.json                      the MapConfig (the source of truth on --resume)
    made_with.json, .lock            the config the parts were made with; the writer's lock
    baseline.safetensors/.json       Mean Vectors and norm ranges of every mapped layer
    targets/L{L}.N{n}/prompts.json   build, effect, held-out and silent prompts
    targets/L{L}.N{n}/sweep.*        X_l, trajectories, decodes, features of every layer
    targets/L{L}.N{n}/selection.json each layer's ranked features and how many are kept
    targets/L{L}.N{n}/layers/layer_{l:02d}.json   ablation effects of layer l's nodes and edges
    targets/L{L}.N{n}/faithfulness.json           the circuit on the held-out prompts
    targets/L{L}.N{n}/dashboards.json             the node dashboards
    targets/L{L}.N{n}/graph.json, graph.json      each target's graph; all targets merged
    circuit.*, graph-metadata.json   the pruned exports (:mod:`circuitmap.graph.export`)

SAE folders use sae-lens's own names (``sae_lens.constants``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitmap.config import Target

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
TENSORS_FILE = "tensors.safetensors"
LOCK_FILE = ".lock"
MADE_WITH_FILE = "made_with.json"
BASELINE_FILE = "baseline.safetensors"  # the first part a map finishes
BASELINE_INFO_FILE = "baseline.json"
TARGETS_DIR = "targets"
PROMPTS_FILE = "prompts.json"
SWEEP_FILE = "sweep.json"
SWEEP_TENSORS_FILE = "sweep.safetensors"
SELECTION_FILE = "selection.json"
LAYERS_DIR = "layers"
FAITHFULNESS_FILE = "faithfulness.json"
DASHBOARDS_FILE = "dashboards.json"
GRAPH_FILE = "graph.json"  # the full, unpruned graph (a target's, or all targets merged)
HTML_FILE = "circuit.html"  # the explorer page `circuitmap view` opens


def target_dir(run_dir: Path, target: Target) -> Path:
    """The folder of ``target``'s results in a map run."""
    return run_dir / TARGETS_DIR / target.id


def layer_file(layers_dir: Path, layer: int) -> Path:
    """The ablation effects of ``layer`` in a target's ``layers_dir`` (its ``layers/``)."""
    return layers_dir / f"layer_{layer:02d}.json"

"""How faithful are circuitmap's whole circuits on prompts they never saw?

    python benchmarks/faithfulness.py [--layers 6,9,12,15 --per-layer 3] [--budget 60]
        [--n-sites 3] [--sae-dir DIR] [--precision float32] [--steps 50]

Targets: the top ``--per-layer`` neurons of `circuitmap find` (definitions vs licences) at each
target layer (SAEs are needed for every layer below the deepest: `circuitmap sae train --layers
0-14`). Each target is mapped by the map's own units (`circuitmap.mapping.worker.Worker`): Mean
Vectors, prompts split into build / effect / held-out / silent, the sweep, the per-layer
selection and the whole circuit chosen on the build prompts; then the circuit is measured on the
**held-out** prompts (`circuitmap.circuit.faithfulness.measure`). The sweep's steps
(``--steps``) only change the layers' decodes and X's features, not the circuit.

Per target: the whole circuit's F(C), F(C) without its error nodes, F(M minus C), the random
floor, the curve's area, its F(C) on the build prompts that chose it, its sites and feature /
error node counts, and the per-layer diagnostics (mean completeness and sufficiency of each
layer's circuit edited alone); then the medians over targets. A ratio above 1 is shown as it is.
The table is written to ``benchmarks/results/faithfulness.md`` with the command and the commit.
"""

from __future__ import annotations

import argparse
import statistics
import time

from record import record

from circuitmap.circuit.faithfulness import measure
from circuitmap.circuit.selection import select_circuit
from circuitmap.config import MapConfig, ModelConfig, OptimConfig, SAESource, Target
from circuitmap.files.prompt_sets import read_prompt_set
from circuitmap.mapping.worker import Worker
from circuitmap.model.forward import matmul_precision
from circuitmap.model.load import load_model
from circuitmap.validate.probe import find_neurons

COLUMNS = (
    ("F(C)", "circuit"),
    ("F(C) no error nodes", "no_error"),
    ("F(M∖C)", "complement"),
    ("random", "random"),
    ("curve area", "area"),
)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _median(values: list[float | None]) -> str:
    defined = [v for v in values if v is not None]
    return _fmt(statistics.median(defined)) if defined else "–"


def measure_target(target: Target, args: argparse.Namespace, lm) -> dict:
    """One target mapped by the map's units and measured on its held-out prompts."""
    config = MapConfig(
        targets=[target],
        optim=OptimConfig(steps=args.steps),
        sae=SAESource(sae_dir=args.sae_dir),
        precision=args.precision,
        budget=args.budget,
        n_sites=args.n_sites,
    )
    worker = Worker(config, lm)
    start = time.perf_counter()
    baseline = worker.baseline()
    split = worker.prompts([target])[target.id]
    sweep = worker.sweep(target, baseline, split)
    build = worker.encoded_prompts(target, split, "build")
    heldout = worker.encoded_prompts(target, split, "heldout")
    decompositions = worker.decompositions(target, split, baseline)
    with matmul_precision(lm.input_device, config.precision):  # as the map's units
        chosen = select_circuit(lm, config, sweep, build, decompositions)
        result = measure(lm, chosen, heldout, decompositions, config.budget, curve=False)
    whole = result.whole
    row = {name: getattr(whole, name) for _, name in COLUMNS}
    row |= {
        "build": None if chosen.circuit is None else chosen.circuit.build_fit,
        "sites": ",".join(map(str, whole.sites)),
        "features": whole.feature_nodes,
        "errors": whole.error_nodes,
        "by_position": " / ".join(f"{f}+{e}" for f, e in (whole.positions or {}).values()),
        "completeness": result.mean("completeness"),
        "sufficiency": result.mean("sufficiency"),
        "joint": result.joint_sufficiency,
        "prompts": f"{len(split.build.texts)}/{len(split.effect.texts)}/{result.n_prompts}",
        "seconds": time.perf_counter() - start,
    }
    print(
        f"{target.id}: F(C) {_fmt(whole.circuit)} (no error nodes {_fmt(whole.no_error)}), "
        f"F(M∖C) {_fmt(whole.complement)}, random {_fmt(whole.random)}, "
        f"{whole.feature_nodes} features + {whole.error_nodes} error nodes at {row['sites']} "
        f"(context / peak: {row['by_position']}), "
        f"{row['seconds']:.0f} s",
        flush=True,
    )
    return row


def table(targets: list[Target], rows: list[dict]) -> str:
    head = (
        "| target | sites | feature nodes | error nodes | context / peak (features+errors) | "
        + " | ".join(title for title, _ in COLUMNS)
        + " | F(C) on the build prompts | per-layer completeness | per-layer sufficiency "
        "| per-layer circuits joint | prompts build/effect/held-out | s |"
    )
    lines = [head, "|" + " --- |" * 16]
    for target, row in zip(targets, rows, strict=True):
        figures = " | ".join(_fmt(row[name]) for _, name in COLUMNS)
        lines.append(
            f"| {target.id} | {row['sites']} | {row['features']} | {row['errors']} "
            f"| {row['by_position']} | {figures} | {_fmt(row['build'])} "
            f"| {_fmt(row['completeness'])} | {_fmt(row['sufficiency'])} | {_fmt(row['joint'])} "
            f"| {row['prompts']} | {row['seconds']:.0f} |"
        )
    medians = " | ".join(_median([row[name] for row in rows]) for _, name in COLUMNS)
    lines.append(
        f"| **median of {len(rows)}** | | "
        f"{statistics.median(r['features'] for r in rows):.0f} | "
        f"{statistics.median(r['errors'] for r in rows):.0f} | | {medians} "
        f"| {_median([r['build'] for r in rows])} "
        f"| {_median([r['completeness'] for r in rows])} "
        f"| {_median([r['sufficiency'] for r in rows])} | {_median([r['joint'] for r in rows])} "
        f"| | {statistics.median(r['seconds'] for r in rows):.0f} |"
    )
    return "\n".join(lines)


def benchmark_targets(lm, layers: str, per_layer: int) -> list[Target]:
    """The top ``per_layer`` neurons of `circuitmap find` (definitions vs licences) at each of
    the comma-separated target ``layers``."""
    _, positive = read_prompt_set("definitions")
    _, negative = read_prompt_set("licences")
    return [
        Target(int(layer), s.neuron)
        for layer in layers.split(",")
        for s in find_neurons(lm, int(layer), positive, negative, per_layer)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="6,9,12,15", help="target layers")
    parser.add_argument("--per-layer", type=int, default=3, help="targets per layer")
    parser.add_argument("--sae-dir", default=None, help="circuitmap SAEs (default: the cache's)")
    parser.add_argument("--precision", default=MapConfig.precision, help="bfloat16 | float32")
    parser.add_argument("--budget", type=int, default=MapConfig.budget, help="feature nodes")
    parser.add_argument("--n-sites", type=int, default=MapConfig.n_sites, help="circuit sites")
    parser.add_argument(
        "--steps", type=int, default=OptimConfig.steps, help="gradient Patchscope steps (labels)"
    )
    args = parser.parse_args()
    lm = load_model(ModelConfig())
    targets = benchmark_targets(lm, args.layers, args.per_layer)
    rows = [measure_target(target, args, lm) for target in targets]
    text = table(targets, rows)
    print("\n" + text)
    print(f"\nwrote {record('faithfulness', text)}")


if __name__ == "__main__":
    main()

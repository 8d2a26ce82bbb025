"""How faithful are circuitmap's circuits, by how their features are chosen?

    python benchmarks/faithfulness.py [--layers 6,9,12 --per-layer 4] [--mapped-layers 2,5,8]
        [--sae-dir DIR] [--select attribution] [--precision float32] [--n-prompts 16]
        [--ig-steps 2] [--rounds 1]

Targets: the top ``--per-layer`` neurons of `circuitmap find` (definitions vs licences) at each
target layer. For each target, the map's own units run once (`circuitmap.circuit.worker.Worker`:
Mean Vectors, prompts split into build / held-out / silent, the sweep, the build prompts' gradient
pass); then each selection is measured on the **held-out** prompts, which it never saw, with
`circuitmap.circuit.faithfulness.measure`:

- ``attribution`` (the default): each layer's features ranked by attribution on the build
  prompts, kept until they carry 0.9 of the layer's positive attribution, at most 40, in two
  rounds of 20 (the second ranked given the first);
- ``activation`` (the report's): ranked by activation on the optimised X_l, the top 5 kept.

Prints the means over targets of: the per-layer mean completeness and sufficiency (error node
kept) of the kept features and of each ranking cut at 5, 10, 20 and 40 features a layer (the
curve), the joint sufficiency (all layers edited at once), the random floor (as many random
active features), the error node's share, features kept per layer, the bootstrap agreement of
each layer's top 5 kept features, and seconds per target; then one row per target.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from circuitmap.circuit.faithfulness import CURVE, Faithfulness, defined_mean, measure
from circuitmap.circuit.selection import Selection, select_circuit
from circuitmap.circuit.worker import Worker
from circuitmap.config import SELECTIONS, MapConfig, ModelConfig, SAESource, Target
from circuitmap.files.prompt_sets import read_prompt_set
from circuitmap.model.forward import matmul_precision
from circuitmap.model.load import load_model
from circuitmap.validate.probe import find_neurons


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="6,9,12", help="target layers")
    parser.add_argument("--per-layer", type=int, default=4, help="targets per layer")
    parser.add_argument("--mapped-layers", default=None, help="upstream layers (default: all)")
    parser.add_argument("--sae-dir", default=None, help="circuitmap SAEs (default: the cache's)")
    parser.add_argument("--select", default=",".join(SELECTIONS), help="selections to measure")
    parser.add_argument("--precision", default=MapConfig.precision, help="bfloat16 | float32")
    parser.add_argument("--n-prompts", type=int, default=MapConfig.n_prompts, help="build prompts")
    parser.add_argument("--ig-steps", type=int, default=MapConfig.ig_steps, help="0: the gradient")
    parser.add_argument("--rounds", type=int, default=MapConfig.rounds, help="selection rounds")
    args = parser.parse_args()
    lm = load_model(ModelConfig())
    _, positive = read_prompt_set("definitions")
    _, negative = read_prompt_set("licences")
    targets = [
        Target(int(layer), s.neuron)
        for layer in args.layers.split(",")
        for s in find_neurons(lm, int(layer), positive, negative, args.per_layer)
    ]
    rows: dict[str, list[tuple[Faithfulness, Selection, float]]] = {}
    for target in targets:
        config = MapConfig(
            targets=[target],
            layers=[int(x) for x in args.mapped_layers.split(",")] if args.mapped_layers else None,
            sae=SAESource(sae_dir=args.sae_dir),
            precision=args.precision,
            n_prompts=args.n_prompts,
            ig_steps=args.ig_steps,
            rounds=args.rounds,
        )
        worker = Worker(config, lm)
        start = time.perf_counter()
        baseline = worker.baseline()
        split = worker.prompts([target])[target.id]
        sweep = worker.sweep(target, baseline)
        run = worker.encoded_prompts(target, split, "build")
        heldout = worker.encoded_prompts(target, split, "heldout")
        decompositions = worker.decompositions(target, split, baseline)
        common = time.perf_counter() - start
        for select in args.select.split(","):
            start = time.perf_counter()
            with matmul_precision(lm.input_device, config.precision):  # as the map's units
                chosen = select_circuit(
                    lm, dataclasses.replace(config, select=select), sweep, run, decompositions
                )
                result = measure(lm, chosen, heldout, decompositions)
            rows.setdefault(select, []).append(
                (result, chosen, common + time.perf_counter() - start)
            )
            print(
                f"{target.id} {select}: completeness {_fmt(result.mean('completeness'))}, "
                f"sufficiency {_fmt(result.mean('sufficiency'))}, joint "
                f"{_fmt(result.joint_sufficiency)}",
                flush=True,
            )

    print(f"\n{len(targets)} targets: {', '.join(t.id for t in targets)}\n")
    print(
        "| selection | features per layer | completeness | sufficiency (error kept) | joint "
        "sufficiency | random completeness | random sufficiency | error share | top-5 "
        "agreement | s per target |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for select, results in rows.items():
        faithful = [f for f, _, _ in results]
        sizes = [
            sum(s.kept for s in sel.layers.values()) / len(sel.layers) for _, sel, _ in results
        ]
        agreement = [
            a
            for _, sel, _ in results
            for s in sel.layers.values()
            for a in s.agreement[:5]
            if a is not None
        ]

        def over(name: str, faithful: list[Faithfulness] = faithful) -> str:
            return _fmt(defined_mean([f.mean(name) for f in faithful]))

        joint = defined_mean([f.joint_sufficiency for f in faithful])
        print(
            f"| {select} (kept) | {sum(sizes) / len(sizes):.1f} | {over('completeness')} "
            f"| {over('sufficiency')} | {_fmt(joint)} "
            f"| {over('random_completeness')} | {over('random_sufficiency')} "
            f"| {over('error_share')} | {_fmt(defined_mean(agreement))} "
            f"| {sum(s for *_, s in results) / len(results):.0f} |"
        )
        for k in CURVE:
            figures = {
                name: defined_mean([f.curve_mean(k, name) for f in faithful])
                for name in ("completeness", "sufficiency")
            }
            print(
                f"| {select} top {k} | {k} | {_fmt(figures['completeness'])} "
                f"| {_fmt(figures['sufficiency'])} | | | | | | |"
            )
    print("\n| target | selection | completeness | sufficiency | joint sufficiency | error share |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for select, results in rows.items():
        for target, (f, _, _) in zip(targets, results, strict=True):
            print(
                f"| {target.id} | {select} | {_fmt(f.mean('completeness'))} "
                f"| {_fmt(f.mean('sufficiency'))} | {_fmt(f.joint_sufficiency)} "
                f"| {_fmt(f.mean('error_share'))} |"
            )


if __name__ == "__main__":
    main()

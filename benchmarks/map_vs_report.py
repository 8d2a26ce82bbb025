"""A whole map: circuitmap's path against the report's method repeated layer by layer.

    python benchmarks/map_vs_report.py [--target-layer 12 --neuron 1742 --layers 0-11]
                                       [--skip-reference]

Both paths map the same target over the same upstream layers with the same settings (50 Adam
steps, 20-token contrastive decode, the top 5 features of X as the report chose them, control
features, zero ablation) and the same SAEs, in one process on one loaded model. circuitmap's
default map (attribution selection of up to 40 features a layer, error nodes, silent-mean
ablation, faithfulness on held-out prompts) is timed beside them; ``--skip-reference`` times
circuitmap's two paths only.

- The report's method, per layer: its own Mean Vector (full-model forwards over 100 texts), Adam
  with a full-model forward per step, signal/noise and plain decodes as separate runs, and every
  feature ablation its own full-model forward (on X, and on the prompts); deepest layer first,
  so later layers' features are read in the same forwards. It gets circuitmap's prompt choice
  for free (not timed).
- circuitmap: the units a map runs (`circuitmap.mapping.worker.Worker`): one Mean-Vector pass for
  all layers, one pass choosing the prompts, one sweep optimising and decoding all layers as rows
  of one batch, the selection, then one batched ablation forward per layer (prompts grouped
  by length) starting at that layer, and the faithfulness measure.

Prints three tables: phases and totals with peak memory (RSS high-water mark of the phase);
seconds per layer, with how far the two paths agree (the optimised X of each path, their top
features, and the relative ablation effects of the features both found: on the prompts, where
both paths ablate the same feature on the same text, and on each path's own X); and the cost of
one gradient step against a bare truncated forward+backward of the same layers.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

import torch
from record import record
from reference import (
    reference_effects,
    reference_mean,
    reference_optimise,
    reference_patchscope,
)

from circuitmap.config import MapConfig, ModelConfig, OptimConfig, Target
from circuitmap.files.corpus import corpus_texts
from circuitmap.mapping.worker import Worker
from circuitmap.method.optimise import optimise_rows
from circuitmap.method.x_space import LayerSpace
from circuitmap.model.hooks import edit_resid_pre, record_mlp_post, run_body
from circuitmap.model.load import cache_root, load_model
from circuitmap.sae.features import feature_report


def _peak_gib() -> float:
    """The process's RSS high-water mark since the last reset, in GiB (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 2**20


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _parse_layers(spec: str, target_layer: int) -> list[int]:
    if not spec:
        return list(range(target_layer))
    layers = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        layers.update(range(int(low), int(high or low) + 1))
    return sorted(layers)


def run_circuitmap(worker: Worker, config: MapConfig, target: Target) -> dict:
    """The map's units in the order map_circuit runs them (without writing files)."""
    times: dict = {"layers": {}}
    _reset_peak()
    start = t = time.perf_counter()
    baseline = worker.baseline()
    times["baseline"] = time.perf_counter() - t
    t = time.perf_counter()
    prompts = worker.prompts([target])[target.id]
    times["prompts"] = time.perf_counter() - t
    t = time.perf_counter()
    sweep = worker.sweep(target, baseline, prompts)
    selection = worker.select(sweep, prompts, baseline)
    times["sweep"] = time.perf_counter() - t
    effects = {}
    for layer in reversed(config.upstream_layers(target)):
        t = time.perf_counter()
        effects[layer] = worker.effects(selection, sweep, layer, prompts, baseline)
        times["layers"][layer] = time.perf_counter() - t
    t = time.perf_counter()
    if config.faithfulness:
        worker.faithfulness(selection, prompts, baseline)
    times["faithfulness"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    times["peak"] = _peak_gib()
    times["top"] = {m: s.features for m, s in selection.layers.items()}
    times["effects"] = {
        m: [(e.vector_relative, e.influence) for e in eff.nodes if e.feature >= 0]
        for m, eff in effects.items()
    }
    times["prompt_texts"] = prompts.build.texts
    times["x"] = sweep.vectors
    return times


def run_reference(worker: Worker, config: MapConfig, target: Target, prompt_texts: list[str]):
    lm, saes = worker.lm, worker.saes(config.upstream_layers(target))
    texts = corpus_texts(config.corpus, cache_root())
    times: dict = {"layers": {}, "top": {}, "effects": {}, "x": {}, "baseline": 0.0, "sweep": 0.0}
    _reset_peak()
    start = time.perf_counter()
    for layer in reversed(config.upstream_layers(target)):
        t0 = time.perf_counter()
        mean = reference_mean(lm, texts, layer, max_tokens=config.corpus.max_tokens, batch_size=8)
        t1 = time.perf_counter()
        x, _ = reference_optimise(
            lm,
            layer=layer,
            target=target,
            mean=mean,
            config=config.optim,
        )
        reference_patchscope(lm, layer=layer, signal=x, noise=mean, config=config.patchscope)
        top = [f.index for f in feature_report(saes[layer], x, mean, k=config.top_k).top]
        t2 = time.perf_counter()
        later = {m: (saes[m].sae, times["top"][m]) for m in times["top"]}
        times["effects"][layer] = reference_effects(
            lm,
            layer=layer,
            target=target,
            x=x,
            sae=saes[layer].sae,
            top=top,
            n_controls=config.controls,
            prompt_texts=prompt_texts,
            max_tokens=config.prompt_tokens,
            dummy_prompt=config.optim.dummy_prompt,
            later=later,
        )
        times["top"][layer] = top
        times["x"][layer] = x
        times["baseline"] += t1 - t0
        times["sweep"] += t2 - t1
        times["layers"][layer] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - start
    times["prompts"] = times["faithfulness"] = 0.0
    times["peak"] = _peak_gib()
    return times


def _phases(paths: list[tuple[str, dict]], n: int) -> str:
    """The phase table of ``paths`` (printed, and returned for the results file)."""
    lines = [
        "| path | Mean Vectors s | prompts s | optimise+decode+select s | ablations s "
        "| faithfulness s | total s | s per layer | peak RSS GiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in paths:
        ablations = sum(r["layers"].values())
        if name.startswith("report"):
            ablations -= r["baseline"] + r["sweep"]
        lines.append(
            f"| {name} | {r['baseline']:.1f} | {r['prompts']:.1f} | {r['sweep']:.1f} "
            f"| {ablations:.1f} | {r['faithfulness']:.1f} | {r['total']:.1f} "
            f"| {r['total'] / n:.1f} | {r['peak']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    return table


def step_overhead(worker: Worker, config: MapConfig, target: Target, layer: int, steps: int):
    """Seconds per step: circuitmap's gradient step (injection hook, early stop, Adam, the
    trajectory), a bare truncated forward+backward of the same layers (forward to the target's
    MLP, backward to resid_pre of ``layer``; no Adam, no bookkeeping), and one step of a sweep
    whose rows are all upstream layers."""
    lm = worker.lm
    baseline = worker.baseline()
    mean = baseline.means[layer]
    optim = dataclasses.replace(config.optim, space="resid", steps=steps)
    one = [LayerSpace(layer, mean, None)]
    optimise_rows(lm, target=target, spaces=one, inits=mean[None], config=optim)  # warm-up
    t = time.perf_counter()
    optimise_rows(lm, target=target, spaces=one, inits=mean[None], config=optim)
    ours = (time.perf_counter() - t) / steps

    ids = lm.tokenizer(config.optim.dummy_prompt, return_tensors="pt")["input_ids"]
    leaves = []

    def leaf(hidden: torch.Tensor) -> torch.Tensor:  # resid_pre of `layer` as the grad leaf
        leaves.append(hidden.detach().requires_grad_(True))
        return leaves[-1]

    t = time.perf_counter()
    for _ in range(steps):
        with (
            edit_resid_pre(lm.model, layer, leaf),
            record_mlp_post(lm.model, target.layer, stop=True) as mlp,
        ):
            run_body(lm.model, ids)
        (-mlp[target.layer][0, -1, target.neuron]).backward()
    bare = (time.perf_counter() - t) / steps

    layers = config.upstream_layers(target)
    inits = torch.stack([baseline.means[m] for m in layers])
    spaces = [LayerSpace(m, baseline.means[m], None) for m in layers]
    t = time.perf_counter()
    optimise_rows(lm, target=target, spaces=spaces, inits=inits, config=optim)
    sweep = (time.perf_counter() - t) / steps
    return ours, bare, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target-layer", type=int, default=12)
    parser.add_argument("--neuron", type=int, default=1742)
    parser.add_argument("--layers", default="", help="e.g. 0-11 (default: every upstream layer)")
    parser.add_argument("--step-layer", type=int, help="a mapped layer [default: the middle one]")
    parser.add_argument(
        "--skip-reference", action="store_true", help="time circuitmap's two paths only"
    )
    args = parser.parse_args()
    target = Target(args.target_layer, args.neuron)
    layers = _parse_layers(args.layers, args.target_layer)
    # The report's choices (top 5 features of X, zero ablation, 4 controls), so that both
    # paths ablate the same features the same way; and circuitmap's default map.
    config = MapConfig(
        targets=[target],
        layers=layers,
        optim=OptimConfig.report(lr_units="rms"),
        select="activation",
        ablation="zero",
        controls=4,
        faithfulness=False,
    )
    default = MapConfig(targets=[target], layers=layers)
    step_layer = layers[len(layers) // 2] if args.step_layer is None else args.step_layer
    if step_layer not in layers:
        parser.error(f"--step-layer {step_layer} is not one of the mapped layers {layers}")
    t = time.perf_counter()
    worker = Worker(config, load_model(ModelConfig()))
    worker.saes(layers)
    load_s = time.perf_counter() - t
    print(f"model and {len(layers)} SAEs loaded in {load_s:.1f} s (not counted below)")
    print(f"torch threads: {torch.get_num_threads()}; target {target.id}, layers {layers}\n")

    ours = run_circuitmap(worker, config, target)
    mapped = run_circuitmap(Worker(default, worker.lm), default, target)
    paths = [("circuitmap, the report's choices", ours), ("circuitmap, default map", mapped)]
    if args.skip_reference:
        print(f"\nwrote {record('map_vs_report', _phases(paths, len(layers)))}")
        return
    ref = run_reference(worker, config, target, ours["prompt_texts"])
    _phases([("report's method, layer by layer", ref), *paths], len(layers))
    print(f"\nwhole map: circuitmap is {ref['total'] / ours['total']:.1f}x faster\n")
    n = len(layers)

    print(
        "| layer | report's method s | circuitmap s (sweep share + ablations) | cos(X, X') "
        "| top features in common | max abs diff, relative effect on prompts | on X |"
    )
    print("| ---: | ---: | ---: | ---: | :---: | ---: | ---: |")
    share = (ours["baseline"] + ours["prompts"] + ours["sweep"]) / n
    for layer in sorted(layers, reverse=True):
        mine = dict(zip(ours["top"][layer], ours["effects"][layer], strict=True))
        theirs = dict(zip(ref["top"][layer], ref["effects"][layer], strict=True))
        shared = sorted(set(mine) & set(theirs))
        on_x = max((abs(theirs[f][0] - mine[f][0]) for f in shared), default=float("nan"))
        on_p = max((abs(theirs[f][1] - mine[f][1]) for f in shared), default=float("nan"))
        cos = torch.cosine_similarity(ref["x"][layer], ours["x"][layer], dim=0).item()
        print(
            f"| {layer} | {ref['layers'][layer]:.1f} | {share + ours['layers'][layer]:.1f} "
            f"| {cos:.4f} | {len(shared)}/{len(theirs)} | {on_p:.1e} | {on_x:.1e} |"
        )

    step, bare, sweep = step_overhead(worker, config, target, step_layer, 20)
    print(f"\n| gradient step (layer {step_layer} -> {target.id}) | ms | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| bare truncated forward+backward | {bare * 1e3:.1f} | 1.00 |")
    print(f"| circuitmap step (hooks, early stop, Adam) | {step * 1e3:.1f} | {step / bare:.2f} |")
    print(
        f"| circuitmap sweep step, {n} layers as rows | {sweep * 1e3:.1f} "
        f"| {sweep / bare:.2f} ({sweep / n * 1e3:.1f} ms per layer) |"
    )


if __name__ == "__main__":
    main()

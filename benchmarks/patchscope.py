"""How far can the gradient Patchscope's X be trusted, per setting?

    python benchmarks/patchscope.py [--layers 6,9,12,15 --per-layer 3] [--restarts 3]

Targets: those of `benchmarks/faithfulness.py` (the top ``--per-layer`` neurons of `circuitmap
find`, definitions vs licences, at each target layer). For each target, every upstream layer
is swept as a map sweeps it (`circuitmap.circuit.sweep.sweep_target`, ``--restarts`` starts
from corpus vectors besides the Mean Vector) under each setting:

- ``report``: the report's optimisation (Adam lr 0.05 on X itself, 50 steps, unbounded);
- ``report, rms lr``: the same with the lr in units of the Mean Vector's RMS coordinate;
- ``default``: circuitmap's default (:class:`circuitmap.config.OptimConfig`).

Per setting, over all (target, layer) pairs: the activation X reaches as a multiple of the
target's corpus maximum (median, share within 1x..10x), whether ||X|| lies in the layer's corpus
norm range, the restarts' top-1 agreement and top-k Jaccard on the features each ascent adds to
its start, the share of X's top 5 among the layer's top 10 by attribution on the build prompts
(`circuitmap.circuit.x_check`), and the sweep's seconds. Beside them, a measure of the landscape
that no optimiser changes: at each layer, the share of the corpus starts at which the SAE
feature of largest gradient (d target / d code, at the start) is the Mean Vector's. Then, for
the first target, each layer's decode of X under each setting beside the decode of the layer's
top attribution features. Written to ``benchmarks/results/patchscope.md`` with the command and
the commit.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from faithfulness import benchmark_targets
from record import record

from circuitmap.circuit.attribution import attribution
from circuitmap.circuit.sweep import sweep_target
from circuitmap.circuit.x_check import X_TOP, check_x, circuit_decodes
from circuitmap.config import MapConfig, ModelConfig, OptimConfig, Target
from circuitmap.mapping.worker import Worker
from circuitmap.method.optimise import dummy_tokens, target_activation
from circuitmap.method.restarts import restart_starts
from circuitmap.method.x_space import CodeRows, LayerSpace
from circuitmap.model.load import load_model

SETTINGS = {
    "report": OptimConfig.report(),
    "report, rms lr": OptimConfig.report(lr_units="rms"),
    "default": OptimConfig(),
}


def gradient_top1(lm, config: MapConfig, target: Target, baseline, saes) -> dict[int, float]:
    """Per upstream layer: the share of the corpus starts (the map's restarts) whose largest
    code gradient d target / d z, z the start's SAE code in the default space, is at the
    feature where the Mean Vector's is."""
    optim = OptimConfig()
    last, prefix = dummy_tokens(lm, optim.dummy_prompt, target.layer)
    shares = {}
    for layer in config.upstream_layers(target):
        mean = baseline.means[layer]
        starts = restart_starts(mean, baseline.vectors[layer], optim, config.restarts)
        space = LayerSpace(layer, mean, baseline.norm_ranges[layer], saes[layer].sae)
        rows = CodeRows([space] * len(starts), starts)
        act = target_activation(
            lm,
            last.expand(len(starts), -1),  # (starts, 1)
            layers=[layer] * len(starts),
            vectors=rows.vectors(),
            target=target,
            prefix=prefix,
        )  # (starts,)
        (grad,) = torch.autograd.grad(act.sum(), rows.params)  # (starts, d_sae)
        top = grad.argmax(-1)
        shares[layer] = (top[1:] == top[0]).float().mean().item()
    return shares


def measure_target(lm, target: Target, restarts: int) -> dict[str, list[dict]]:
    """Per setting, one row per upstream layer of ``target``."""
    config = MapConfig(targets=[target], restarts=restarts)
    worker = Worker(config, lm)
    baseline = worker.baseline()
    split = worker.prompts([target])[target.id]
    run = worker.encoded_prompts(target, split, "build")
    decompositions = worker.decompositions(target, split, baseline)
    saes = worker.saes(config.upstream_layers(target))
    scores = {layer: attribution(dec, run)[0].mean(0) for layer, dec in decompositions.items()}
    gradient = gradient_top1(lm, config, target, baseline, saes)
    rows: dict[str, list[dict]] = {}
    for name, optim in SETTINGS.items():
        setting = dataclasses.replace(config, optim=optim)
        start = time.perf_counter()
        sweep = sweep_target(lm, setting, target, baseline, saes, split.corpus_max)
        seconds = time.perf_counter() - start
        rows[name] = []
        for layer, search in sorted(sweep.layers.items()):
            low, high = baseline.norm_ranges[layer]
            norm = sweep.vectors[layer].norm().item()
            x = check_x(search, scores[layer])
            rows[name].append(
                {
                    "layer": layer,
                    "level": search.level,
                    "in_norm": low * 0.999 <= norm <= high * 1.001,
                    "top1": search.top1_agreement,
                    "jaccard": search.jaccard,
                    "overlap": x.overlap,
                    "gradient_top1": gradient[layer],
                    "decode": search.contrastive_text,
                    "seconds": seconds / len(sweep.layers),
                }
            )
    ranked = {layer: s.topk(X_TOP).indices.tolist() for layer, s in scores.items()}
    decodes = circuit_decodes(lm, config.patchscope, baseline.means, ranked, decompositions, run)
    for row in rows["default"]:
        row["circuit_decode"] = decodes.get(row["layer"], "")
    return rows


def _median(values: list) -> str:
    defined = [v for v in values if v is not None]
    return f"{statistics.median(defined):.2f}" if defined else "–"


def _mean(values: list) -> str:
    defined = [v for v in values if v is not None]
    return f"{statistics.mean(defined):.2f}" if defined else "–"


def _share(values: list[bool]) -> str:
    return f"{sum(values) / len(values):.0%}" if values else "–"


def summary(per_target: list[dict[str, list[dict]]]) -> str:
    lines = [
        "| setting | target-layers | X ÷ corpus max (median) | within 1×–10× | ‖X‖ in corpus range "
        "| restart top-1 agreement (median / mean) | top-k Jaccard (median) | X's top 5 in the "
        "attribution top 10 (median) | s a layer (median) |",
        "|" + " --- |" * 9,
    ]
    for name in SETTINGS:
        rows = [row for target in per_target for row in target[name]]
        levels = [r["level"] for r in rows]
        lines.append(
            f"| {name} | {len(rows)} | {_median(levels)} "
            f"| {_share([v is not None and 1 <= v <= 10 for v in levels])} "
            f"| {_share([r['in_norm'] for r in rows])} | {_median([r['top1'] for r in rows])} / "
            f"{_mean([r['top1'] for r in rows])} "
            f"| {_median([r['jaccard'] for r in rows])} | {_median([r['overlap'] for r in rows])} "
            f"| {_median([r['seconds'] for r in rows])} |"
        )
    rows = [row for target in per_target for row in target["default"]]
    lines += [
        "",
        "At the same starts, the feature of largest gradient is the Mean Vector's at "
        f"{_median([r['gradient_top1'] for r in rows])} of corpus starts (median over "
        f"target-layers; mean {_mean([r['gradient_top1'] for r in rows])}).",
    ]
    return "\n".join(lines)


def per_layer(targets: list[Target], per_target: list[dict[str, list[dict]]]) -> str:
    lines = [
        "| target | layer | setting | X ÷ corpus max | top-1 agreement | Jaccard | overlap "
        "| gradient top-1 at the starts |",
        "|" + " --- |" * 8,
    ]
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    for target, result in zip(targets, per_target, strict=True):
        for name, rows in result.items():
            for r in rows:
                lines.append(
                    f"| {target.id} | {r['layer']} | {name} | {fmt(r['level'])} "
                    f"| {fmt(r['top1'])} | {fmt(r['jaccard'])} | {fmt(r['overlap'])} "
                    f"| {fmt(r['gradient_top1'])} |"
                )
    return "\n".join(lines)


def decodes(target: Target, result: dict[str, list[dict]]) -> str:
    escape = lambda t: repr(t).replace("|", "\\|")  # noqa: E731
    head = " | ".join(f"X ({name})" for name in SETTINGS)
    lines = [
        f"Decodes of {target.id}, each layer (contrastive Patchscope):",
        "",
        f"| layer | {head} | top 5 attribution features |",
        "|" + " --- |" * (len(SETTINGS) + 2),
    ]
    for i, row in enumerate(result["default"]):
        texts = " | ".join(escape(result[name][i]["decode"]) for name in SETTINGS)
        lines.append(f"| {row['layer']} | {texts} | {escape(row['circuit_decode'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="6,9,12,15", help="target layers")
    parser.add_argument("--per-layer", type=int, default=3, help="targets per layer")
    parser.add_argument("--restarts", type=int, default=MapConfig.restarts, help="per layer")
    args = parser.parse_args()
    lm = load_model(ModelConfig())
    targets = benchmark_targets(lm, args.layers, args.per_layer)
    per_target = []
    for target in targets:
        start = time.perf_counter()
        per_target.append(measure_target(lm, target, args.restarts))
        print(f"{target.id}: {time.perf_counter() - start:.0f} s", flush=True)
    text = "\n\n".join(
        [summary(per_target), decodes(targets[0], per_target[0]), per_layer(targets, per_target)]
    )
    print("\n" + text)
    print(f"\nwrote {record('patchscope', text)}")


if __name__ == "__main__":
    main()

"""Train SAEs for the embedded model's layers and print their quality and the time it took.

    python benchmarks/sae_training.py [--layers 0-17] [--n-tokens 200000] [--sae-dir DIR]

One activation pass collects all layers; each SAE is then trained, measured on held-out tokens
(explained variance, L0, dead latents) and spliced into the model (next-token loss). Writes the
SAEs to --sae-dir (default: a temporary folder) and prints one row per layer and the totals.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from circuitmap.config import CorpusConfig, ModelConfig
from circuitmap.files.corpus import corpus_texts
from circuitmap.model.load import cache_root, load_model
from circuitmap.sae.train import train_layer_saes
from circuitmap.sae.train_config import SAETrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", default="0-17")
    parser.add_argument("--n-tokens", type=int, default=SAETrainConfig.n_tokens)
    parser.add_argument("--k", type=int, default=SAETrainConfig.k)
    parser.add_argument("--width", type=int, default=SAETrainConfig.width)
    parser.add_argument("--sae-dir", type=Path, default=None)
    args = parser.parse_args()
    low, _, high = args.layers.partition("-")
    layers = list(range(int(low), int(high or low) + 1))
    lm = load_model(ModelConfig())
    texts = corpus_texts(CorpusConfig(), cache_root(), n=20_000)
    config = SAETrainConfig(n_tokens=args.n_tokens, k=args.k, width=args.width)
    root = args.sae_dir or Path(tempfile.mkdtemp(prefix="circuitmap-sae-bench-"))
    start = time.perf_counter()
    results = train_layer_saes(lm, texts, layers, config, root, force=True, log=lambda m: None)
    total = time.perf_counter() - start
    print(f"{len(layers)} layers, {args.n_tokens} tokens each, width {args.width}, k {args.k}")
    print(f"{'layer':>5} {'expl.var':>9} {'L0':>6} {'dead':>7} {'spliced loss':>13} {'train s':>8}")
    for layer, q in sorted(results.items()):
        ev, l0, dead = q["explained_variance"], q["l0"], q["dead_fraction"]
        print(
            f"{layer:>5} {ev:>9.3f} {l0:>6.1f} {dead:>7.1%} "
            f"{q['loss_increase']:>+13.1%} {q['train_seconds']:>8.1f}"
        )
    collect = next(iter(results.values()))["collect_seconds_all_layers"]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"activation pass {collect:.0f} s; total {total:.0f} s ({total / 60:.1f} min); "
        f"peak memory {peak_gb:.1f} GiB; SAEs in {root}"
    )


if __name__ == "__main__":
    main()

"""Times the default map of commit e71a189, the default before faithful circuits (top 5 features
of X per layer, 4 controls, zero ablation), for the speed comparison in README.

    git worktree add /tmp/e71a189 e71a189
    PYTHONPATH=/tmp/e71a189 python benchmarks/previous_default_map.py [--repeats 1]

It imports that commit's package (its module layout, not this one's), runs the same units its
own `benchmarks/map_vs_report.py` timed for circuitmap, without the report's 27-minute reference,
and prints one line per repeat. Run it beside `python benchmarks/map_vs_report.py
--skip-reference`, alternately, so that both see the same machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import circuitmap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    old = Path(circuitmap.__file__).parents[1]
    if (old / "circuitmap" / "circuit").is_dir():
        sys.exit(
            "PYTHONPATH must point at a worktree of commit e71a189 (see this file's docstring)"
        )
    sys.path.insert(0, str(old / "benchmarks"))
    from map_vs_report import run_circuitmap  # that commit's benchmark

    from circuitmap.config import MapConfig, ModelConfig, Target
    from circuitmap.model import load_model
    from circuitmap.worker import Worker

    target = Target(12, 1742)
    config = MapConfig(targets=[target], layers=list(range(12)))
    worker = Worker(config, load_model(ModelConfig()))
    worker.saes(config.layers)
    for _ in range(args.repeats):
        r = run_circuitmap(worker, config, target)
        print(
            f"e71a189 default map: total {r['total']:.1f} s (Mean Vectors {r['baseline']:.1f}, "
            f"prompts {r['prompts']:.1f}, sweep {r['sweep']:.1f}, "
            f"ablations {sum(r['layers'].values()):.1f})",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""How long the default map takes against the default map of an earlier commit, in alternating
pairs on the same machine.

    git worktree add /tmp/base BASE
    python benchmarks/map_time.py --base /tmp/base [--pairs 1] [--keep graphs/NAME]

Each pair runs `circuitmap map --target-layer 12 --neuron 1742` (every upstream layer, the
cached SAEs) first with the base tree's code, then with this tree's, each in a fresh process
(``PYTHONPATH`` at that tree), and times the whole command. ``--keep`` keeps this tree's last
run folder there (the committed example). The table, with the ratio of each pair, goes to
``benchmarks/results/map_time.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import record

HERE = Path(__file__).resolve().parents[1]
COMMAND = ["map", "--target-layer", "12", "--neuron", "1742"]


def timed_map(tree: Path, run_dir: Path) -> float:
    """Seconds of one default map with ``tree``'s code (its ``cli`` folder as
    ``circuitmap_cli``), written into ``run_dir`` (an absolute path)."""
    links = Path(tempfile.mkdtemp())
    (links / "circuitmap_cli").symlink_to(tree / "cli")
    env = dict(os.environ, PYTHONPATH=f"{links}{os.pathsep}{tree}")
    # Run from the links folder: the working folder would come first on the import path.
    code = (
        "import sys, circuitmap; assert circuitmap.__file__.startswith(sys.argv[1]), "
        "circuitmap.__file__; del sys.argv[1]; from circuitmap_cli.main import main; main()"
    )
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, str(tree), *COMMAND, "--run-dir", str(run_dir)],
        env=env,
        cwd=links,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(links)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="worktree of the base commit")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep this tree's last run here")
    args = parser.parse_args()
    base = subprocess.run(
        ["git", "-C", str(args.base), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(args.pairs):
            before = timed_map(args.base.resolve(), Path(scratch) / f"base{pair}")
            run_dir = Path(scratch) / f"this{pair}"
            after = timed_map(HERE, run_dir)
            rows.append((before, after))
            print(f"pair {pair + 1}: {before:.0f} s at {base}, {after:.0f} s here", flush=True)
        if args.keep is not None:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(run_dir, args.keep)
    lines = [f"| pair | {base} s | this tree s | ratio |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {i + 1} | {b:.0f} | {a:.0f} | {a / b:.2f} |" for i, (b, a) in enumerate(rows)]
    total = sum(a for _, a in rows) / sum(b for b, _ in rows)
    lines.append(
        f"| all | {sum(b for b, _ in rows):.0f} | {sum(a for _, a in rows):.0f} | {total:.2f} |"
    )
    text = "\n".join(lines)
    print("\n" + text)
    print(f"\nwrote {record('map_time', text)}")


if __name__ == "__main__":
    main()

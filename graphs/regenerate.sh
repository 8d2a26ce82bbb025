#!/usr/bin/env bash
# Regenerates the example circuits of the embedded Gemma 3 270M in graphs/ and their screenshots
# with the SAEs of layers 0-11 (cached and skipped if present):
# - gemma-3-270m-L12-N1742: layer 12's math neuron 1742 over all its upstream layers, made by
#   benchmarks/map_time.py (timed against a base commit's default map, given as a worktree in
#   $BASE) when BASE is set, else by a plain `circuitmap map`;
# - gemma-3-270m-L12-math: the top 3 neurons of `circuitmap find --layer 12` (definitions vs
#   licences) in one merged map.
set -euo pipefail
cd "$(dirname "$0")/.."
circuitmap sae train --layers 0-11
one=graphs/gemma-3-270m-L12-N1742
many=graphs/gemma-3-270m-L12-math
rm -rf "$one" "$many"
if [ -n "${BASE:-}" ]; then
  python benchmarks/map_time.py --base "$BASE" --keep "$one"
else
  circuitmap map --target-layer 12 --neuron 1742 --run-dir "$one"
fi
circuitmap map --find-layer 12 --find-top 3 --run-dir "$many"
python graphs/screenshot.py "$one/circuit.html" "$one.png" --first-view "$one-first-view.png"
python graphs/screenshot.py "$many/circuit.html" "$many.png"

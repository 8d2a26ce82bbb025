#!/usr/bin/env bash
# Regenerates the example circuits of the embedded Gemma 3 270M in graphs/ and their screenshots
# (on 2 CPU cores: about 17 minutes for the SAEs of layers 0-11, cached and skipped if present,
# then about 5 minutes for both maps and their screenshots):
# - gemma-3-270m-L12-N1742: layer 12's math neuron 1742 over all its upstream layers;
# - gemma-3-270m-L12-math: the top 3 neurons of `circuitmap find --layer 12` (definitions vs
#   licences) in one merged map.
set -euo pipefail
cd "$(dirname "$0")/.."
circuitmap sae train --layers 0-11
one=graphs/gemma-3-270m-L12-N1742
many=graphs/gemma-3-270m-L12-math
rm -rf "$one" "$many"
circuitmap map --target-layer 12 --neuron 1742 --run-dir "$one"
circuitmap map --find-layer 12 --find-top 3 --run-dir "$many"
python graphs/screenshot.py "$one/circuit.html" "$one.png"
python graphs/screenshot.py "$many/circuit.html" "$many.png"

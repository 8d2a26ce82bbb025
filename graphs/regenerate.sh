#!/usr/bin/env bash
# Regenerates the example circuit of the embedded Gemma 3 270M in graphs/ (about 45 minutes on
# 2 CPU cores): SAEs for layers 0-11 (cached, skipped if present), then the map of layer 12's
# math neuron 1742 over all its upstream layers.
set -euo pipefail
cd "$(dirname "$0")/.."
out=graphs/gemma-3-270m-L12-N1742
circuitmap sae train --layers 0-11
rm -rf "$out"
circuitmap map --target-layer 12 --neuron 1742 --run-dir "$out"

"""SAEs: finding and loading them (sae-lens releases, local folders, circuitmap's own), training
circuitmap's own, and decomposing vectors into their features."""

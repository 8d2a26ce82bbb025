"""Whole maps: prompts, the sweep over layers, feature selection, ablation effects,
faithfulness, the units of work and where they run, the driver, and the graph."""

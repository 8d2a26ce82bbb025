"""Measuring a target's circuit: its prompts, the sweep over layers, the SAE decomposition,
attribution and feature selection, ablation effects, faithfulness and node dashboards."""

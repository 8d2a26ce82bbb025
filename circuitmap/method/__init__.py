"""The report's method for one (target, upstream layer): Mean Vector, gradient ascent on X,
contrastive Patchscope, random restarts and feature ablation."""

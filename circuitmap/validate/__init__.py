"""Checks of what a map claims: prompt-set probes, steering during generation, and labels set
against causal descriptions."""

"""circuitmap: map the circuit behind one MLP neuron of a transformer.

Pipeline: model/hooks -> baseline (Mean Vector) -> optimise (gradient ascent on X) ->
patchscope (contrastive decode) -> explain (one layer, saved to a run folder); for whole maps:
SAE features -> sweep (all layers of a target) -> effects (ablations) -> search driver ->
graph and exports (run_map).

Names are imported lazily, so ``circuitmap --help`` does not pay for importing torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Baseline": "baseline",
    "compute_baseline": "baseline",
    "CorpusConfig": "config",
    "ExplainConfig": "config",
    "MapConfig": "config",
    "Target": "config",
    "run_map": "circuit",
    "make_executor": "executors",
    "ModelConfig": "config",
    "OptimConfig": "config",
    "PatchscopeConfig": "config",
    "load_corpus": "corpus",
    "CircuitmapError": "errors",
    "ExplainResult": "explain",
    "explain": "explain",
    "save_explain": "explain",
    "LoadedModel": "model",
    "load_model": "model",
    "OptimResult": "optimise",
    "optimise_vector": "optimise",
    "target_activation": "optimise",
    "PatchscopeResult": "patchscope",
    "contrastive_logits": "patchscope",
    "patchscope": "patchscope",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'circuitmap' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

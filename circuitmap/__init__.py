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
    "Baseline": "method.baseline",
    "compute_baseline": "method.baseline",
    "CorpusConfig": "config",
    "ExplainConfig": "config",
    "MapConfig": "config",
    "Target": "config",
    "run_map": "mapping.run",
    "make_executor": "mapping.executors",
    "ModelConfig": "config",
    "OptimConfig": "config",
    "PatchscopeConfig": "config",
    "load_corpus": "files.corpus",
    "CircuitmapError": "errors",
    "ExplainResult": "method.explain",
    "explain": "method.explain",
    "save_explain": "method.explain",
    "LoadedModel": "model.load",
    "load_model": "model.load",
    "OptimResult": "method.optimise",
    "optimise_vector": "method.optimise",
    "target_activation": "method.optimise",
    "PatchscopeResult": "method.patchscope",
    "contrastive_logits": "method.patchscope",
    "patchscope": "method.patchscope",
    "show": "mapping.exports",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'circuitmap' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)

"""The report's method for one (target neuron, upstream layer): baseline -> gradient ascent ->
contrastive Patchscope, saved into a run folder."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from circuitmap.config import ExplainConfig, from_dict, to_dict
from circuitmap.errors import CircuitmapError
from circuitmap.files.corpus import corpus_texts
from circuitmap.files.layout import CONFIG_FILE, RESULT_FILE, TENSORS_FILE
from circuitmap.files.storage import (
    atomic_write_json,
    check_run_dir,
    new_run_dir,
    read_json,
)
from circuitmap.files.tensors import atomic_save_tensors, read_tensors
from circuitmap.method.baseline import compute_baseline
from circuitmap.method.optimise import injected_activation, optimise_vector
from circuitmap.method.patchscope import check_prompt, patchscope
from circuitmap.model.load import (
    cache_root,
    check_target,
    load_model,
    load_tokenizer,
    model_id_for,
    model_shape,
)
from circuitmap.sae.features import FeatureReport, feature_report
from circuitmap.sae.store import SAEStore, check_sae_folders

if TYPE_CHECKING:
    from circuitmap.model.load import (
        LoadedModel,
    )
    from circuitmap.sae.store import LayerSAE

Log = Callable[[str], None]


@dataclass
class ExplainResult:
    config: ExplainConfig
    mean_vector: torch.Tensor  # (d_model,)
    vector: torch.Tensor  # (d_model,) optimised X
    mean_activation: float  # target activation with the Mean Vector injected
    trajectory: list[float]
    final_activation: float
    corpus_max: float  # target's largest activation on the corpus texts
    norm_range: tuple[float, float]  # resid_pre norms seen at the layer on the corpus
    step_size: float
    contrastive_text: str
    plain_text: str
    inject_position: int
    texts: list[str]
    features: FeatureReport | None = None  # None when no SAE was available
    seconds: dict[str, float] = field(default_factory=dict)

    _TENSORS = ("mean_vector", "vector")

    def save(self, run_dir: Path) -> None:
        """Write config.json, result.json and tensors.safetensors (each atomically)."""
        atomic_save_tensors(run_dir / TENSORS_FILE, {k: getattr(self, k) for k in self._TENSORS})
        scalars = {
            k: v for k, v in self.__dict__.items() if k not in self._TENSORS and k != "config"
        }
        scalars["features"] = dataclasses.asdict(self.features) if self.features else None
        atomic_write_json(run_dir / RESULT_FILE, scalars)
        atomic_write_json(run_dir / CONFIG_FILE, {"kind": "explain", **to_dict(self.config)})

    @classmethod
    def load(cls, run_dir: Path) -> ExplainResult:
        """Reload a saved explain run; a folder that is not one is a one-line error."""
        check_run_dir(run_dir)
        config = read_json(run_dir / CONFIG_FILE)
        config.pop("kind", None)
        result = read_json(run_dir / RESULT_FILE)
        result["norm_range"] = tuple(result["norm_range"])
        if result.get("features"):
            result["features"] = FeatureReport.from_dict(result["features"])
        tensors = read_tensors(run_dir / TENSORS_FILE)
        return cls(config=from_dict(ExplainConfig, config), **tensors, **result)


def explain(
    config: ExplainConfig, lm: LoadedModel | None = None, log: Log = print
) -> ExplainResult:
    """Run the whole method for ``config`` (loading the model unless ``lm`` is given)."""
    seconds = {}
    start = time.perf_counter()
    if lm is None:
        lm = load_checked_model(config, log)
        seconds["load_model"] = time.perf_counter() - start
    layer, target_layer, neuron = config.layer, config.target_layer, config.neuron
    target = config.target
    lm.check_target(target, [layer])
    check_prompt(lm.tokenizer, config.patchscope)
    layer_sae = _find_sae(lm, config, log)  # a given SAE source that fails stops the run here
    if layer_sae is None and config.optim.space == "sae":
        log(f"no SAE for layer {layer}: X is optimised in the residual stream (space resid)")
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, space="resid"))

    t = time.perf_counter()
    texts = corpus_texts(config.corpus, cache_root(config.model.cache_dir))
    log(f"baseline: Mean Vector at resid_pre of layer {layer} over {len(texts)} texts ...")
    base = compute_baseline(
        lm,
        texts,
        [layer],
        max_tokens=config.corpus.max_tokens,
        batch_size=config.corpus.batch_size,
        target=target,
    )
    mean = base.means[layer]
    seconds["baseline"] = time.perf_counter() - t

    t = time.perf_counter()
    log(f"optimising X for layer {target_layer} neuron {neuron} ({config.optim.steps} steps) ...")
    optim = optimise_vector(
        lm,
        layer=layer,
        target=target,
        mean=mean,
        config=config.optim,
        norm_range=base.norm_ranges[layer],
        sae=None if layer_sae is None else layer_sae.sae,
        corpus_max=base.target_max,
    )
    mean_act = injected_activation(
        lm, config.target, [config.layer], mean[None], config.optim.dummy_prompt
    )[0].item()
    seconds["optimise"] = time.perf_counter() - t

    features = None
    if layer_sae is not None:
        log(f"SAE features from {layer_sae.origin} ...")
        features = feature_report(layer_sae, optim.vector, mean, k=config.top_k, code=optim.code)

    t = time.perf_counter()
    log("contrastive Patchscope decode ...")
    scope = patchscope(lm, layer=layer, signal=optim.vector, noise=mean, config=config.patchscope)
    seconds["patchscope"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start

    return ExplainResult(
        config=config,
        mean_vector=mean,
        vector=optim.vector,
        mean_activation=mean_act,
        trajectory=optim.trajectory,
        final_activation=optim.final_activation,
        corpus_max=float(base.target_max),
        norm_range=base.norm_ranges[layer],
        step_size=optim.step_size,
        contrastive_text=scope.contrastive_text,
        plain_text=scope.plain_text,
        inject_position=scope.inject_position,
        texts=texts,
        features=features,
        seconds=seconds,
    )


def check_explain(config: ExplainConfig) -> None:
    """Everything ``config`` needs before the model loads (one-line errors): the target and
    layer in the model, the dtype for its family, the Patchscope prompt, the SAE folder."""
    check_target(model_shape(config.model), config.target, [config.layer])
    check_prompt(load_tokenizer(config.model), config.patchscope)
    check_sae_folders(
        config.sae,
        [config.layer],
        cache_root(config.model.cache_dir),
        model_id_for(config.model.name),
    )


def load_checked_model(config: ExplainConfig, log: Log = print) -> LoadedModel:
    """The model, loaded after :func:`check_explain` passes."""
    check_explain(config)
    log(f"loading model {config.model.name} ...")
    return load_model(config.model)


def _find_sae(lm: LoadedModel, config: ExplainConfig, log: Log) -> LayerSAE | None:
    """The SAE of the layer; without an explicit SAE source, a missing SAE skips the step."""
    store = SAEStore.for_model(lm, config.sae, config.model.cache_dir)
    try:
        return store.layer(config.layer)
    except CircuitmapError as exc:
        if store.explicit:
            raise
        log(f"SAE step skipped: {exc}")
        return None


def save_explain(result: ExplainResult, out_root: Path) -> Path:
    """Save ``result`` into a new run folder under ``out_root`` and return it."""
    c = result.config
    run_dir = new_run_dir(out_root, f"explain-L{c.target_layer}-n{c.neuron}-l{c.layer}")
    result.save(run_dir)
    return run_dir

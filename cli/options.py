"""Option declarations shared by the commands, and their translation into config dataclasses."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitmap.config import (
    CorpusConfig,
    DType,
    ModelConfig,
    OptimConfig,
    PatchscopeConfig,
    SAESource,
    Target,
    choices,
)
from circuitmap.errors import CircuitmapError, check_range
from circuitmap.files.storage import read_text_file

from .app import finite

Model = Annotated[
    str,
    typer.Option(
        "--model",
        help='"embedded" (Gemma 3 270M, no download), a local HF model folder, or a hub name.',
    ),
]
Device = Annotated[str, typer.Option(help='cpu, cuda, cuda:1, ... or "auto" to spread over GPUs.')]
Dtype = Annotated[str, typer.Option(help=" | ".join(choices(DType)) + ".")]
CacheDir = Annotated[
    str | None,
    typer.Option(
        help="Cache for converted models, corpora and SAEs [default: $CIRCUITMAP_CACHE "
        "or ~/.cache/circuitmap]."
    ),
]
Dataset = Annotated[
    str | None,
    typer.Option(
        help="Corpus: local .txt/.jsonl/.json/.csv/.parquet file or folder, or an HF dataset "
        "name[:config]. Default: the offline corpus of math docstrings and software licences."
    ),
]
Split = Annotated[str, typer.Option(help="Split of an HF dataset.")]
TextColumn = Annotated[str, typer.Option(help="Column holding the text.")]
NTexts = Annotated[int, typer.Option(help="Texts averaged into the Mean Vector.", min=1)]
MaxTokens = Annotated[int, typer.Option(help="Last tokens kept of each text.", min=1)]


def model_options(
    model: Model = ModelConfig.name,
    device: Device = ModelConfig.device,
    dtype: Dtype = ModelConfig.dtype,
    cache_dir: CacheDir = None,
) -> ModelConfig:
    return ModelConfig(name=model, device=device, dtype=dtype, cache_dir=cache_dir)


def corpus_config(
    dataset: str | None, split: str, text_column: str, n_texts: int, max_tokens: int
) -> CorpusConfig:
    return CorpusConfig(
        dataset=dataset,
        split=split,
        text_column=text_column,
        n_texts=n_texts,
        max_tokens=max_tokens,
    )


SaeRelease = Annotated[
    str | None,
    typer.Option(help="sae-lens release, e.g. gemma-scope-2b-pt-res-canonical (needs --sae-id)."),
]
SaeId = Annotated[
    str | None,
    typer.Option(
        help="SAE id template; {layer} is the SAE's own layer, e.g. "
        "layer_{layer}/width_16k/canonical."
    ),
]
SaePath = Annotated[
    str | None,
    typer.Option(help="Local SAE folder (sae-lens format), {layer} templated like --sae-id."),
]
SaeHook = Annotated[
    str,
    typer.Option(
        help="Hook the SAE's layer numbers name: resid_post (Gemma Scope: resid_pre of "
        "layer l reads SAE l-1) or resid_pre (the report notebook's pairing)."
    ),
]
SaeDir = Annotated[
    str | None,
    typer.Option(help="Folder of circuitmap's own SAEs [default: <cache>/saes/<model id>]."),
]


def sae_options(
    sae_release: SaeRelease = None,
    sae_id: SaeId = None,
    sae_path: SaePath = None,
    sae_hook: SaeHook = SAESource.hook,
    sae_dir: SaeDir = None,
) -> SAESource:
    return SAESource(
        release=sae_release, sae_id=sae_id, path=sae_path, hook=sae_hook, sae_dir=sae_dir
    )


def parse_layers(spec: str, n_layers: int) -> list[int]:
    """ "0-3,7" -> [0, 1, 2, 3, 7], each checked against the model's layers."""
    layers: set[int] = set()
    try:
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            layers.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise CircuitmapError(f"layers {spec!r} are not a list like 0-3,7") from None
    for layer in sorted(layers):
        check_range("layer", layer, 0, n_layers - 1)
    return sorted(layers)


def parse_target(spec: str) -> Target:
    """ "12:1742" -> Target(12, 1742)."""
    layer, sep, neuron = spec.strip().partition(":")
    try:
        if not sep:
            raise ValueError
        return Target(int(layer), int(neuron))
    except ValueError:
        raise CircuitmapError(f"target {spec!r} is not LAYER:NEURON like 12:1742") from None


def read_targets(path: Path) -> list[Target]:
    """Targets from a file: one LAYER:NEURON per line; blank lines and # comments are skipped."""
    lines = read_text_file(path, "targets file").splitlines()
    specs = [line.split("#")[0].strip() for line in lines]
    return [parse_target(spec) for spec in specs if spec]


TargetLayer = Annotated[int, typer.Option(help="Layer L of the target MLP neuron.")]
Neuron = Annotated[int, typer.Option(help="Index n of the neuron in layer L's MLP.")]
Lr = Annotated[
    float,
    typer.Option(help="Adam learning rate (see --lr-units).", callback=finite(0, above=True)),
]
LrUnits = Annotated[
    str, typer.Option(help='"rms": lr x the Mean Vector\'s RMS coordinate; "raw": as the report.')
]
Steps = Annotated[int, typer.Option(help="Adam steps.", min=1)]
Seed = Annotated[int, typer.Option(help="Seed for --init random.")]
Init = Annotated[str, typer.Option(help='"mean" (the report) or "random".')]
NormConstraint = Annotated[
    bool, typer.Option(help="Keep ||X|| within the resid norms seen on the corpus.")
]
Space = Annotated[
    str,
    typer.Option(
        help='"sae": X is the Mean Vector\'s SAE error plus a sparse non-negative code of the '
        'layer\'s SAE features; "resid": X itself (the report).'
    ),
]
Level = Annotated[
    float,
    typer.Option(
        help="Drive the target up to this multiple of its corpus maximum (0: without limit).",
        callback=finite(0),
    ),
]
Sparsity = Annotated[
    float,
    typer.Option(
        help="--space sae: L1 pull of X's code towards the Mean Vector's.", callback=finite(0)
    ),
]
ReportSetting = Annotated[
    bool,
    typer.Option(
        "--report-setting",
        help="The report's optimisation: Adam lr 0.05 on X itself for 50 steps, without limit "
        "(--space resid --lr-units raw --steps 50 --level 0 --no-norm-constraint; it overrides "
        "those options, not --lr).",
    ),
]
Prompt = Annotated[str, typer.Option(help="Patchscope prompt.")]
InjectToken = Annotated[str, typer.Option(help="Prompt token that receives X.")]
Alpha = Annotated[float, typer.Option(help="Contrast strength.", callback=finite())]
Plausibility = Annotated[
    float,
    typer.Option(
        help="Contrastive decoding chooses among tokens the signal run gives at least this "
        "share of its top probability (0..1; 0: any token).",
        callback=finite(0, 1),
    ),
]
MaxNewTokens = Annotated[int, typer.Option(help="Tokens to decode.", min=1)]
TopK = Annotated[int, typer.Option(help="SAE features per layer.", min=1)]
Out = Annotated[Path, typer.Option(help="Folder that receives the run folder.")]


def optim_config(
    lr: float,
    lr_units: str,
    steps: int,
    seed: int,
    init: str,
    norm_constraint: bool,
    space: str,
    level: float,
    sparsity: float,
    report_setting: bool,
) -> OptimConfig:
    """The optimisation's config; ``level`` 0 is no bound; ``report_setting``: the report's."""
    if report_setting:
        return OptimConfig.report(lr=lr, seed=seed, init=init)
    return OptimConfig(
        lr=lr,
        lr_units=lr_units,
        steps=steps,
        seed=seed,
        init=init,
        norm_constraint=norm_constraint,
        space=space,
        level=level or None,
        sparsity=sparsity,
    )


def patchscope_config(
    prompt: str, inject_token: str, alpha: float, plausibility: float, max_new_tokens: int
) -> PatchscopeConfig:
    return PatchscopeConfig(
        prompt=prompt,
        inject_token=inject_token,
        alpha=alpha,
        plausibility=plausibility,
        max_new_tokens=max_new_tokens,
    )


def parse_feature(spec: str, n_layers: int) -> tuple[int, int]:
    """ "8:302" -> (8, 302), the layer checked against the model."""
    layer, sep, index = spec.partition(":")
    if not sep or not layer.strip().isdigit() or not index.strip().isdigit():
        raise CircuitmapError(f"feature {spec!r} is not LAYER:INDEX, e.g. 8:302")
    check_range("layer", int(layer), 0, n_layers - 1)
    return int(layer), int(index)


def check_feature(index: int, d_sae: int) -> None:
    check_range("feature", index, 0, d_sae - 1)


def parse_floats(spec: str, option: str) -> list[float]:
    """The finite numbers of a comma-separated list, or a one-line error naming ``option``."""
    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise CircuitmapError(
            f"{option} {spec!r} is not a comma-separated list of numbers"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise CircuitmapError(f"{option} {spec!r} is not valid: use finite numbers, e.g. 0,1,2")
    return values


@dataclass
class Method:
    """The options every method command shares, as configs."""

    model: ModelConfig
    corpus: CorpusConfig
    optim: OptimConfig
    patchscope: PatchscopeConfig
    sae: SAESource
    top_k: int


def method_options(
    model: Model = ModelConfig.name,
    device: Device = ModelConfig.device,
    dtype: Dtype = ModelConfig.dtype,
    cache_dir: CacheDir = None,
    dataset: Dataset = None,
    split: Split = CorpusConfig.split,
    text_column: TextColumn = CorpusConfig.text_column,
    n_texts: NTexts = CorpusConfig.n_texts,
    max_tokens: MaxTokens = CorpusConfig.max_tokens,
    lr: Lr = OptimConfig.lr,
    lr_units: LrUnits = OptimConfig.lr_units,
    steps: Steps = OptimConfig.steps,
    seed: Seed = OptimConfig.seed,
    init: Init = OptimConfig.init,
    norm_constraint: NormConstraint = OptimConfig.norm_constraint,
    space: Space = OptimConfig.space,
    level: Level = OptimConfig.level or 0.0,
    sparsity: Sparsity = OptimConfig.sparsity,
    report_setting: ReportSetting = False,
    prompt: Prompt = PatchscopeConfig.prompt,
    inject_token: InjectToken = PatchscopeConfig.inject_token,
    alpha: Alpha = PatchscopeConfig.alpha,
    plausibility: Plausibility = PatchscopeConfig.plausibility,
    max_new_tokens: MaxNewTokens = PatchscopeConfig.max_new_tokens,
    sae_release: SaeRelease = None,
    sae_id: SaeId = None,
    sae_path: SaePath = None,
    sae_hook: SaeHook = SAESource.hook,
    sae_dir: SaeDir = None,
    top_k: TopK = 5,
) -> Method:
    return Method(
        model=model_options(model, device, dtype, cache_dir),
        corpus=corpus_config(dataset, split, text_column, n_texts, max_tokens),
        optim=optim_config(
            lr, lr_units, steps, seed, init, norm_constraint, space, level, sparsity, report_setting
        ),
        patchscope=patchscope_config(prompt, inject_token, alpha, plausibility, max_new_tokens),
        sae=sae_options(sae_release, sae_id, sae_path, sae_hook, sae_dir),
        top_k=top_k,
    )


def with_options(builder: Callable[..., Any], name: str) -> Callable[[Callable[..., Any]], Any]:
    """Give a command all of ``builder``'s options after its own; the command receives what
    ``builder`` makes of them as its ``name`` argument. Decorators of this kind stack."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        shared = inspect.signature(builder, eval_str=True).parameters
        own = [
            p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != name
        ]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            built = builder(**{option: kwargs.pop(option) for option in shared})
            return fn(**{name: built}, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in [*own, *shared.values()]]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must read the merged signature, not fn's
        return wrapper

    return decorate


with_method_options = with_options(method_options, "method")
with_model_options = with_options(model_options, "model_config")
with_sae_options = with_options(sae_options, "sae")

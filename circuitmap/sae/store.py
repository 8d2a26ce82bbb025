"""Finding the SAE that reads resid_pre of a layer: an sae-lens release, a local folder, or the
SAEs circuitmap trained and cached.

Layer convention: circuitmap names layers by the resid_pre they read. Gemma Scope (and most
sae-lens releases) name SAEs by ``hook_resid_post`` of their layer, so with ``hook="resid_post"``
(the default) the SAE read at resid_pre of layer l is the release's layer l-1. ``hook="resid_pre"``
uses the release's layer l, which is how the report's notebook paired them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sae_lens import SAE
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from circuitmap.errors import CircuitmapError, fill_layer
from circuitmap.files.storage import atomic_write_json, read_json, write_error
from circuitmap.model.load import cache_root, model_id_for, model_width

if TYPE_CHECKING:
    from circuitmap.config import ModelConfig, SAESource
    from circuitmap.model.load import LoadedModel

QUALITY_FILE = "quality.json"
_HOOK_RE = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")


@dataclass
class LayerSAE:
    sae: SAE
    layer: int  # resid_pre layer it reads
    origin: str  # where it was loaded from
    neuronpedia_id: str | None
    quality: dict[str, Any] | None

    def neuronpedia_url(self, feature: int) -> str | None:
        if not self.neuronpedia_id:
            return None
        return f"https://www.neuronpedia.org/{self.neuronpedia_id}/{feature}"


def own_sae_root(cache: Path, model_id: str, source: SAESource) -> Path:
    return Path(source.sae_dir).expanduser() if source.sae_dir else cache / "saes" / model_id


def own_sae_dir(root: Path, layer: int) -> Path:
    return root / f"resid_pre_{layer}"


def resid_pre_layer(hook_name: str | None) -> int | None:
    """The resid_pre layer a TransformerLens hook name reads (resid_post l = resid_pre l+1)."""
    match = _HOOK_RE.fullmatch(hook_name or "")
    if not match:
        return None
    return int(match[1]) + (1 if match[2] == "post" else 0)


def _release_layer(layer: int, source: SAESource) -> int:
    """The release's own layer number of the SAE that reads resid_pre of ``layer``."""
    sae_layer = layer - 1 if source.hook == "resid_post" else layer
    if sae_layer < 0:
        raise CircuitmapError(
            "no resid_post SAE reads resid_pre of layer 0 (the embeddings): "
            "choose an upstream layer of at least 1, or --sae-hook resid_pre"
        )
    return sae_layer


def read_quality(folder: Path) -> dict[str, Any] | None:
    """An SAE folder's quality.json, or None; a damaged one is an error naming it."""
    path = folder / QUALITY_FILE
    if not path.is_file():
        return None
    quality = read_json(path)
    if not isinstance(quality, dict):
        raise CircuitmapError(f"{path} is not an SAE quality record (a JSON object)")
    return quality


def _path_folder(source: SAESource, layer: int) -> Path:
    """The ``--sae-path`` folder of the SAE that reads resid_pre of ``layer``."""
    assert source.path is not None
    return Path(fill_layer(source.path, _release_layer(layer, source), "--sae-path")).expanduser()


def recorded_hook(cfg: dict[str, Any]) -> str | None:
    """The hook an SAE's ``cfg.json`` says it was trained on (sae-lens 6 keeps it in
    ``metadata``, earlier releases at the top level), or None."""
    metadata = cfg.get("metadata")
    hook = metadata.get("hook_name") if isinstance(metadata, dict) else None
    hook = hook or cfg.get("hook_name")
    return hook if isinstance(hook, str) else None


def check_hook(hook: str | None, layer: int, origin: str, source: SAESource) -> None:
    """A one-line error when an SAE recorded as trained on ``hook`` would read resid_pre of
    another layer than ``layer``, naming both and the fix. A hook name that is not a residual
    stream hook of TransformerLens's naming is not checked."""
    trained = resid_pre_layer(hook)
    if trained is None or trained == layer:
        return
    match = _HOOK_RE.fullmatch(hook or "")
    assert match is not None
    if source.release or source.path:
        numbered = _release_layer(layer, source)  # the number filled into --sae-id/--sae-path
        if int(match[1]) == numbered:
            fix = f"pass --sae-hook resid_{match[2]} (the numbering of this SAE's hook)"
        else:
            fix = (
                f"use the SAE trained on blocks.{layer - 1}.hook_resid_post "
                f"(= blocks.{layer}.hook_resid_pre)"
            )
    else:
        fix = f"retrain it with `circuitmap sae train --layers {layer} --force`"
    raise CircuitmapError(
        f"SAE {origin} was trained on {hook} (resid_pre of layer {trained}) but would read "
        f"resid_pre of layer {layer}: {fix}"
    )


def sae_folders(
    source: SAESource, layers: list[int], cache: Path, model_id: str
) -> dict[int, Path]:
    """Per layer, the local folder its SAE is read from (``--sae-path`` or circuitmap's own
    SAEs, cached or not yet); empty for an sae-lens release."""
    if source.release:
        return {}
    if source.path:
        return {layer: _path_folder(source, layer) for layer in layers}
    root = own_sae_root(cache, model_id, source)
    return {layer: own_sae_dir(root, layer) for layer in layers}


def check_sae_folders(source: SAESource, layers: list[int], cache: Path, model_id: str) -> None:
    """Before any work (one-line errors): with ``--sae-path``, every layer's folder holds an
    SAE; every local SAE already there was trained on the hook it will read (its cfg.json's
    hook name). A release is checked when it loads."""
    for layer, folder in sae_folders(source, layers, cache, model_id).items():
        cfg = folder / SAE_CFG_FILENAME
        if not cfg.is_file():
            if source.path:
                raise CircuitmapError(
                    f"no SAE for resid_pre of layer {layer} at {str(folder)!r} (--sae-path): "
                    f"the folder needs {SAE_CFG_FILENAME} and {SAE_WEIGHTS_FILENAME}"
                )
            continue  # an own SAE still to train
        data = read_json(cfg)
        if not isinstance(data, dict):
            raise CircuitmapError(f"{cfg} is not an SAE config (a JSON object)")
        check_hook(recorded_hook(data), layer, str(folder), source)


def load_layer_sae(
    layer: int, d_model: int, cache: Path, model_id: str, source: SAESource
) -> LayerSAE:
    """The SAE for resid_pre of ``layer``, or a one-line error that says how to get one."""
    if source.release and source.sae_id is not None:  # SAESource checked that both come
        sae_id = fill_layer(source.sae_id, _release_layer(layer, source), "--sae-id")
        try:
            sae = SAE.from_pretrained(source.release, sae_id, device="cpu")
        except Exception as exc:  # sae-lens raises many types for unknown ids or no network
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CircuitmapError(f"cannot load SAE {source.release}/{sae_id}: {first}") from exc
        loaded = LayerSAE(
            sae, layer, f"{source.release}/{sae_id}", sae.cfg.metadata.neuronpedia_id, None
        )
        check_hook(sae.cfg.metadata.hook_name, layer, loaded.origin, source)
    else:
        if source.path:
            folder = _path_folder(source, layer)
        else:
            folder = own_sae_dir(own_sae_root(cache, model_id, source), layer)
            if not folder.is_dir():
                raise CircuitmapError(
                    f"no SAE for resid_pre of layer {layer} of {model_id} in {folder.parent}: "
                    f"make one with `circuitmap sae train --layers {layer}`, "
                    "or pass --sae-release/--sae-id or --sae-path"
                )
        if not (folder / SAE_CFG_FILENAME).is_file():
            raise CircuitmapError(f"SAE folder {str(folder)!r} has no {SAE_CFG_FILENAME}")
        try:
            sae = SAE.load_from_disk(str(folder), device="cpu")
        except Exception as exc:
            raise CircuitmapError(f"cannot load SAE from {folder}: {exc}") from exc
        quality = read_quality(folder)
        loaded = LayerSAE(sae, layer, str(folder), sae.cfg.metadata.neuronpedia_id, quality)
        check_hook(sae.cfg.metadata.hook_name, layer, loaded.origin, source)
    if sae.cfg.d_in != d_model:
        raise CircuitmapError(
            f"SAE {loaded.origin} reads vectors of size {sae.cfg.d_in}, but the model's residual "
            f"stream has size {d_model}"
        )
    return loaded


class SAEStore:
    """The SAEs one model reads from one source, each loaded once: ``store.layer(l)`` is the
    SAE for resid_pre of layer l (or a one-line error that says how to get one)."""

    def __init__(self, source: SAESource, d_model: int, model_id: str, cache: Path) -> None:
        self.source, self.d_model, self.model_id, self.cache = source, d_model, model_id, cache
        self._loaded: dict[int, LayerSAE] = {}

    @classmethod
    def for_model(cls, lm: LoadedModel, source: SAESource, cache_dir: str | None) -> SAEStore:
        """The store for ``lm``, with circuitmap's own SAEs under the cache ``cache_dir``."""
        return cls(source, lm.d_model, lm.model_id, cache_root(cache_dir))

    @classmethod
    def for_config(cls, model: ModelConfig, source: SAESource) -> SAEStore:
        """The same store from the model's config alone, before its weights load (SAEs and
        feature indices are checked first)."""
        return cls(
            source, model_width(model), model_id_for(model.name), cache_root(model.cache_dir)
        )

    def layer(self, layer: int) -> LayerSAE:
        if layer not in self._loaded:
            self._loaded[layer] = load_layer_sae(
                layer, self.d_model, self.cache, self.model_id, self.source
            )
        return self._loaded[layer]

    def layers(self, layers: list[int]) -> dict[int, LayerSAE]:
        return {layer: self.layer(layer) for layer in layers}

    @property
    def explicit(self) -> bool:
        """Whether the user named the source (else: circuitmap's own SAEs in the cache)."""
        return bool(self.source.release or self.source.path or self.source.sae_dir)


def save_own_sae(sae: Any, folder: Path, quality: dict[str, Any]) -> None:
    """Write an SAE folder atomically: cfg.json, sae_weights.safetensors and quality.json appear
    together (built in a temp folder, then renamed), so a half-written SAE never loads."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    except OSError as exc:
        raise write_error(folder, exc) from None
    try:
        sae.save_inference_model(tmp)
        atomic_write_json(tmp / QUALITY_FILE, quality)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except OSError as exc:
        raise write_error(folder, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def list_own_saes(root: Path) -> list[tuple[int, Path, dict[str, Any] | None]]:
    """(layer, folder, quality) of each complete SAE under ``root``, by layer."""
    found = []
    for folder in root.glob("resid_pre_*"):
        if (folder / SAE_CFG_FILENAME).is_file() and folder.name.removeprefix(
            "resid_pre_"
        ).isdigit():
            found.append(
                (int(folder.name.removeprefix("resid_pre_")), folder, read_quality(folder))
            )
    return sorted(found, key=lambda item: item[0])

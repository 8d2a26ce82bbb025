"""Tensors in run folders, as safetensors: written atomically like every other result
(:func:`circuitmap.files.storage.atomic_write`), read back with a one-line error."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import atomic_write


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` as safetensors: a tensor holding NaN or infinity is refused (a one-line
    error naming it), never written."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for name, tensor in cpu.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CircuitmapError(
                f"refusing to write {path}: tensor {name!r} holds NaN or infinite values"
            )
    atomic_write(path, lambda tmp: save_file(cpu, str(tmp)))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CircuitmapError(f"cannot read {path}: {exc}") from exc

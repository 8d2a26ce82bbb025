"""Prompt sets: a text file with one prompt a line, or a set shipped with circuitmap
(``circuitmap/data/<name>.txt``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import read_text_file

EXAMPLE_SETS = ("math_notation", "licences", "definitions", "narrative")


def example_set_path(name: str) -> Path:
    """A prompt set shipped with circuitmap (one of EXAMPLE_SETS)."""
    return Path(str(files("circuitmap").joinpath("data", f"{name}.txt")))


def read_prompt_set(spec: str, at_least: int = 1) -> tuple[str, list[str]]:
    """(name, prompts) of a file with one prompt a line, or of a shipped set's name; a set of
    fewer than ``at_least`` prompts is a one-line error."""
    path = example_set_path(spec) if spec in EXAMPLE_SETS else Path(spec).expanduser()
    if not path.is_file():
        raise CircuitmapError(
            f"prompt set {spec!r} is neither a readable file nor one of {', '.join(EXAMPLE_SETS)}"
        )
    lines = read_text_file(path, "prompt set").splitlines()
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise CircuitmapError(f"prompt set {spec!r} is empty")
    if len(prompts) < at_least:
        raise CircuitmapError(
            f"prompt set {spec!r} has {len(prompts)} prompt(s): at least {at_least} are needed"
        )
    return path.stem, prompts

"""Text corpora through `datasets`: the offline default, local files, or any HF dataset.

The offline default needs no network: it is built from text that circuitmap's own dependencies
install — docstrings of sympy and networkx (mathematics: definitions, notation, formulas) and the
licence files of a fixed list of distributions that circuitmap installs (software licences) — the
two themes of the report. Only those packages are read, so other tools in the environment do not
change it. It is built once, shuffled with a fixed seed, and cached as JSON lines.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from datasets import Dataset, load_dataset

from circuitmap.errors import CircuitmapError
from circuitmap.files.storage import atomic_write_text

if TYPE_CHECKING:
    from circuitmap.config import CorpusConfig

DEFAULT_CORPUS_VERSION = "v2"
MATH_PACKAGES = ("sympy", "networkx")
LICENCE_PACKAGES = (  # circuitmap's own requirements and theirs
    "torch",
    "transformers",
    "accelerate",
    "sae-lens",
    "networkx",
    "pyvis",
    "datasets",
    "typer",
    "sympy",
    "numpy",
    "safetensors",
    "huggingface-hub",
    "pyarrow",
    "pandas",
    "scipy",
    "jinja2",
    "click",
    "rich",
    "tqdm",
    "requests",
    "pydantic",
    "regex",
    "filelock",
    "fsspec",
    "packaging",
    "pyyaml",
    "gguf",
)
_LOCAL_SUFFIXES = {
    ".txt": "text",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
_MAX_CHARS = 1500  # longer documents are split on blank lines into chunks of about this size
_MIN_CHARS = 80


def _chunks(text: str) -> Iterator[str]:
    """Split a document on blank lines into pieces of about _MAX_CHARS characters at most,
    dropping pieces shorter than _MIN_CHARS."""
    pieces, piece = [], ""
    for para in text.split("\n\n"):
        if piece and len(piece) + len(para) > _MAX_CHARS:
            pieces.append(piece)
            piece = ""
        piece = f"{piece}\n\n{para}" if piece else para
    pieces.append(piece)
    yield from (p for p in pieces if len(p) >= _MIN_CHARS)


def _docstrings(package: str) -> Iterator[str]:
    """Docstrings of the modules, classes and functions of a package (parsed, not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            if "tests" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, OSError):
                continue
            for node in ast.walk(tree):
                if isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    doc = ast.get_docstring(node, clean=True)
                    if doc:
                        yield from _chunks(doc)


def _licences() -> Iterator[str]:
    """Licence texts of the LICENCE_PACKAGES that are installed (each distinct text once)."""
    seen: set[str] = set()
    for name in LICENCE_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in sorted(dist.files or [], key=str):
            if not file.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
                continue
            try:
                text = Path(file.locate()).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if text not in seen:
                seen.add(text)
                yield from _chunks(text)


def build_default_corpus(path: Path, seed: int = 0) -> Path:
    """Write the offline default corpus to ``path`` (JSON lines with ``text`` and ``source``)."""
    records = [{"text": t, "source": pkg} for pkg in MATH_PACKAGES for t in _docstrings(pkg)]
    records += [{"text": t, "source": "licence"} for t in _licences()]
    random.Random(seed).shuffle(records)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    return path


def default_corpus_path(cache: Path) -> Path:
    """The cached offline corpus, built on first use."""
    path = cache / "corpora" / f"default-{DEFAULT_CORPUS_VERSION}.jsonl"
    if not path.exists():
        build_default_corpus(path)
    return path


def load_corpus(config: CorpusConfig, cache: Path) -> Dataset:
    """The corpus as a `datasets.Dataset` with a ``text`` column; one-line errors for bad input."""
    if config.dataset is None:
        dataset = load_dataset("json", data_files=str(default_corpus_path(cache)), split="train")
    else:
        dataset = _load_named(config)
    if config.text_column not in dataset.column_names:
        raise CircuitmapError(
            f"dataset {config.dataset!r} has no column {config.text_column!r}: "
            f"its columns are {', '.join(dataset.column_names)}"
        )
    if config.text_column != "text":
        dataset = dataset.rename_column(config.text_column, "text")
    dataset = dataset.filter(lambda row: isinstance(row["text"], str) and row["text"].strip() != "")
    if len(dataset) == 0:
        raise CircuitmapError(f"dataset {config.dataset or 'default'!r} has no non-empty texts")
    return dataset


def _load_named(config: CorpusConfig) -> Dataset:
    name = str(config.dataset)
    path = Path(name).expanduser()
    try:
        if path.exists():
            files = (
                sorted(p for p in path.rglob("*") if p.suffix in _LOCAL_SUFFIXES)
                if path.is_dir()
                else [path]
            )
            if not files:
                raise CircuitmapError(
                    f"dataset folder {name!r} holds no {', '.join(_LOCAL_SUFFIXES)} files"
                )
            kinds = {_LOCAL_SUFFIXES.get(p.suffix) for p in files}
            if None in kinds or len(kinds) != 1:
                raise CircuitmapError(
                    f"dataset {name!r}: use files of one kind among {', '.join(_LOCAL_SUFFIXES)}"
                )
            kind = kinds.pop()
            if kind == "text":  # one text per blank-line separated paragraph
                paragraphs = [
                    para.strip()
                    for p in files
                    for para in p.read_text(encoding="utf-8").split("\n\n")
                ]
                return Dataset.from_dict({"text": [para for para in paragraphs if para]})
            return load_dataset(kind, data_files=[str(p) for p in files], split="train")
        hub_name, _, subset = name.partition(":")
        return load_dataset(hub_name, subset or None, split=config.split)
    except CircuitmapError:
        raise
    except Exception as exc:  # datasets raises many types for missing/unreachable data
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CircuitmapError(f"cannot load dataset {name!r}: {first}") from exc


def corpus_texts(config: CorpusConfig, cache: Path, n: int | None = None) -> list[str]:
    """The first ``n`` (default ``config.n_texts``) texts of the corpus."""
    dataset = load_corpus(config, cache)
    n = config.n_texts if n is None else n
    return list(dataset.select(range(min(n, len(dataset))))["text"])

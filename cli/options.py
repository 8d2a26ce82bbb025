"""Option declarations shared by the commands, and their translation into config dataclasses."""

from __future__ import annotations

from typing import Annotated

import typer

from circuitmap.config import CorpusConfig, ModelConfig

Model = Annotated[
    str,
    typer.Option(
        "--model",
        help='"embedded" (Gemma 3 270M, no download), a local HF model folder, or a hub name.',
    ),
]
Device = Annotated[str, typer.Option(help='cpu, cuda, cuda:1, ... or "auto" to spread over GPUs.')]
Dtype = Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")]
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


def model_config(model: str, device: str, dtype: str, cache_dir: str | None) -> ModelConfig:
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

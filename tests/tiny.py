"""Tiny randomly initialised models of the real architectures, and a word-level tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from circuitmap.config import (
    CorpusConfig,
    MapConfig,
    ModelConfig,
    OptimConfig,
    PatchscopeConfig,
    SAESource,
    Target,
)
from circuitmap.model.load import LoadedModel
from circuitmap.sae.train_config import SAETrainConfig

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]
WORDS = (
    "a an the of is that x detailed description number real circle set all points plane "
    "equal distance from fixed point function integral sum let be defined as for and or not "
    "license software copyright permission granted without warranty any person obtaining copy "
    "theorem proof group ring field vector matrix graph node edge 0 1 2 3 4 5 6 7 8 9 = + - * ( ) ."
).split()
ARCHS = ("gemma2", "gemma3", "llama")


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return wrap_tokenizer(tok, vocab)


def wrap_tokenizer(tok: Tokenizer, vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    """``tok`` (its ``vocab`` starting with SPECIAL) as a left-padding transformers tokenizer
    that puts <bos> first."""
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="left",
    )


def tiny_model(arch: str, n_layers: int = 4, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised causal LM of family ``arch`` (hidden 32, MLP 64)."""
    torch.manual_seed(seed)
    common = dict(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        max_position_embeddings=128,
    )
    if arch == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**common, sliding_window=16))
    elif arch == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, sliding_window=16))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:
        raise ValueError(arch)
    # Random init gives near-zero norms/activations; scale weights so neurons fire visibly.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.mul_(20.0)
    return model.eval().requires_grad_(False)


def tiny_lm(arch: str = "gemma3", **kwargs: int) -> LoadedModel:
    return LoadedModel(
        model=tiny_model(arch, **kwargs), tokenizer=tiny_tokenizer(), model_id=f"tiny-{arch}"
    )


def save_tiny(folder: Path, arch: str = "gemma3") -> Path:
    """Save a tiny model + tokenizer as a local HF folder (what ``--model PATH`` loads)."""
    lm = tiny_lm(arch)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


# SAE training settings small enough for tiny models and a few thousand tokens.
TINY_TRAIN = SAETrainConfig(
    width=64,
    k=4,
    n_tokens=3000,
    eval_tokens=300,
    batch_tokens=64,
    eval_texts=4,
    context=16,
    lr=3e-3,
)


def map_config(setup: dict[str, Path], **extra: Any) -> MapConfig:
    """A small map of the tiny model (target L3.N5 unless ``targets`` is given) with the
    session's tiny SAEs and corpus (the ``tiny_map_setup`` fixture)."""
    return MapConfig(
        **{"targets": [Target(3, 5)], **extra},
        model=ModelConfig(name=str(setup["model"])),
        corpus=CorpusConfig(dataset=str(setup["corpus"])),
        optim=OptimConfig(steps=5),
        patchscope=PatchscopeConfig(max_new_tokens=3),
        sae=SAESource(sae_dir=str(setup["saes"])),
        n_prompts=4,
        prompt_pool=40,
    )

"""Decodes choose no control token and only tokens the signal finds plausible; text shown per
token, per snippet and per decode is made of whole characters (never U+FFFD)."""

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

from circuitmap.config import PatchscopeConfig, Target
from circuitmap.method.patchscope import contrastive_logits, patchscope
from circuitmap.model.generate import greedy_decode, prompt_rows
from circuitmap.model.load import LoadedModel
from circuitmap.model.text import token_texts, window_text
from tiny import SPECIAL, tiny_lm, tiny_tokenizer, wrap_tokenizer

SPLIT = "ab 𓀀ꙮ c"  # two characters that only byte tokens spell


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Single letters and a space, every byte as a ``<0xNN>`` token (sentencepiece's byte
    fallback, as Gemma's tokenizer has it)."""
    letters = list("abcdefghijklmnopqrstuvwxyz ")
    vocab = {t: i for i, t in enumerate(SPECIAL + letters + [f"<0x{b:02X}>" for b in range(256)])}
    tok = Tokenizer(models.BPE(vocab, [], unk_token="<unk>", byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return wrap_tokenizer(tok, vocab)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_token_texts_show_whole_characters():
    tok = byte_tokenizer()
    ids = _ids(tok, SPLIT)
    assert "\ufffd" in "".join(tok.decode([i]) for i in ids)  # what decoding alone gives
    texts = token_texts(tok, ids)
    assert len(texts) == len(ids) and "\ufffd" not in "".join(texts)
    assert "".join(texts) == SPLIT
    assert "𓀀" in texts and "ꙮ" in texts  # each on the token that completes it
    # A stray byte (a character cut off at the start) is shown as its byte token.
    stray = token_texts(tok, ids[4:])
    assert stray[:3] == ["<0x93>", "<0x80>", "<0x80>"] and "".join(stray[3:]) == "ꙮ c"


def test_windows_start_and_end_on_character_boundaries():
    tok = byte_tokenizer()
    ids = _ids(tok, SPLIT)
    start = ids.index(tok.convert_tokens_to_ids("<0x93>"))  # inside 𓀀
    assert window_text(tok, ids, start, len(ids)) == "𓀀ꙮ c"
    assert window_text(tok, ids, 0, start + 1) == "ab "  # 𓀀 incomplete at the end: left off
    assert window_text(tok, ids, start, start + 1) == ""  # part of one character: nothing
    assert window_text(tok, ids, start + 2, len(ids)) == "𓀀ꙮ c"  # from its last byte


def test_prompt_tokens_never_hold_a_replacement_character():
    from circuitmap.circuit.prompts import top_prompts

    tok = byte_tokenizer()
    lm = tiny_lm("gemma3")
    lm.model.resize_token_embeddings(len(tok))
    lm = LoadedModel(lm.model, tok, "tiny-bytes")
    pool = [SPLIT, "abc 𓀀 d", "ꙮꙮ 𓀀", "a b c", "𓀀𓀀𓀀 ab"] * 2
    split = top_prompts(lm, pool, [Target(3, 5)], n=2, n_heldout=2, n_silent=2)["L3.N5"]
    for part in (split.build, split.heldout, split.silent):
        for ids, texts in zip(part.token_ids, part.tokens, strict=True):
            assert len(texts) == len(ids) and "\ufffd" not in "".join(texts)


def test_plausibility_keeps_the_contrast_to_tokens_the_signal_finds_likely():
    # Token 0: p_signal ~0.005 of the best, but the largest contrast against the noise.
    signal = torch.tensor([0.0, 5.3, 5.0, 4.0])
    noise = torch.tensor([-20.0, 5.3, 4.0, 4.0])
    assert contrastive_logits(signal, noise, 1.0).argmax() == 0  # no constraint
    scores = contrastive_logits(signal, noise, 1.0, plausibility=0.1)
    assert scores[0] == float("-inf") and scores.argmax() == 2
    assert torch.isfinite(scores[1:]).all()
    ruled_out = contrastive_logits(
        signal.clone().index_fill_(0, torch.tensor([2]), -torch.inf), noise, 1.0, plausibility=0.1
    )
    assert ruled_out.argmax() == 1 and not ruled_out.isnan().any()


def _image_token_lm():
    """The tiny model with Gemma's ``<start_of_image>`` added (not flagged special, as in the
    embedded model's tokenizer) and predicted first at every position."""
    tok = tiny_tokenizer()
    tok.add_tokens([AddedToken("<start_of_image>", special=False)])  # as Gemma's GGUF has it
    image = tok.convert_tokens_to_ids("<start_of_image>")
    lm = tiny_lm("gemma3")
    lm.model.resize_token_embeddings(len(tok))

    def boost(module, inputs, output):
        output[..., image] += 1e4
        return output

    lm.model.lm_head.register_forward_hook(boost)
    return LoadedModel(lm.model, tok, "tiny-image"), image


def test_no_decode_chooses_a_control_token():
    lm, image = _image_token_lm()
    chosen: list[int] = []

    def argmax(logits):
        chosen.extend(logits.argmax(-1).tolist())
        return logits.argmax(-1)

    greedy_decode(lm, prompt_rows(lm, "a circle is", 2), argmax, 4)
    assert chosen and image not in chosen
    signal = torch.randn(lm.d_model) * 5
    result = patchscope(
        lm,
        layer=1,
        signal=signal,
        noise=torch.zeros(lm.d_model),
        config=PatchscopeConfig(max_new_tokens=3),
    )
    assert "start_of_image" not in result.contrastive_text + result.plain_text

"""Node dashboards: computed at the end of a map from a corpus slice, kept in the run folder,
set on the graph's nodes; text decoded by whole characters."""

import json

from circuitmap.circuit.dashboards import BINS, PROMOTED, TEXTS, token_text, whole_text
from circuitmap.mapping.run import run_map
from tiny import WORDS, map_config


class _Bytes:
    """A byte-level tokenizer: token i is byte i."""

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")

    def convert_ids_to_tokens(self, token):
        return f"<0x{token:02X}>"


class _Replacement:
    """A vocabulary whose token 0 is the replacement character itself."""

    def decode(self, ids):
        return "\ufffd" * len(ids)

    def convert_ids_to_tokens(self, token):
        return "\ufffd"


def test_text_is_decoded_by_whole_characters():
    ids = list("a é b\n∑".encode())  # é is 2 bytes, ∑ 3
    tok = _Bytes()
    assert whole_text(tok, ids) == "a é b ⏎ ∑"
    assert whole_text(tok, ids[:3]) == "a "  # é's first byte alone is left out
    assert whole_text(tok, ids[3:]) == " b ⏎ ∑"  # so is its last byte; spaces stay
    assert whole_text(tok, ids[:-1]) == "a é b ⏎ "
    assert token_text(tok, ids[2]) == "<0xC3>" and token_text(tok, ids[0]) == "a"
    assert token_text(tok, list("\ufffd".encode())[0]) == "<0xEF>"
    assert token_text(_Replacement(), 0) == "U+FFFD"


def test_a_map_stores_each_nodes_dashboard(tiny_map_setup, tmp_path):
    run_dir = tmp_path / "run"
    graph, _ = run_map(map_config(tiny_map_setup), run_dir, log=lambda m: None)
    stored = json.loads((run_dir / "targets" / "L3.N5" / "dashboards.json").read_text())
    features = [n for n, d in graph.nodes(data=True) if d["kind"] == "feature"]
    in_file = {f"L{layer}.F{f}" for layer, found in stored["features"].items() for f in found}
    assert features and set(features) <= in_file
    assert graph.graph["dashboard_texts"] == TEXTS
    for node in features:
        d = graph.nodes[node]
        contexts = d["corpus_contexts"]
        assert 0 < len(contexts) <= 5
        assert [c["activation"] for c in contexts] == sorted(
            (c["activation"] for c in contexts), reverse=True
        )
        assert all(c["token"] in WORDS for c in contexts)
        hist = d["activation_histogram"]
        assert len(hist["counts"]) == BINS and sum(hist["counts"]) == hist["active"] > 0
        assert hist["tokens"] >= hist["active"]
        assert len(d["promoted_tokens"]) == PROMOTED
    target = graph.nodes["L3.N5"]
    build = json.loads((run_dir / "targets" / "L3.N5" / "prompts.json").read_text())["build"]
    assert [p["activation"] for p in target["top_prompts"]] == build["activations"][:5]
    assert target["activation_histogram"]["tokens"] > 0
    text = (run_dir / "circuit.html").read_text()
    assert "corpus_contexts" in text and "promoted_tokens" in text and "\ufffd" not in text

"""A tiny model with a planted circuit: feature A (resid_pre 1) makes layer 1's MLP write the
direction of feature B (resid_pre 2), which drives neuron 5 of layer 3. Distractor feature D
has larger activations and no path to the neuron. The SAEs are exact (a ± orthonormal basis),
so their error terms are zero.

Attribution selection must recover A -> B, activation selection (the report's) must not, the
consecutive-layer edge A -> B must be the strongest, and faithfulness must be 1 with every
feature kept and 0 with none.
"""

from pathlib import Path

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from circuitmap.circuit.decompose import decompose, token_vectors
from circuitmap.circuit.faithfulness import layer_faithfulness
from circuitmap.circuit.prompt_run import prompt_run
from circuitmap.circuit.prompts import top_prompts
from circuitmap.circuit.selection import Selection
from circuitmap.circuit.whole import WholeCircuit, masked_target, masks_of
from circuitmap.circuit.whole_choice import choose_whole
from circuitmap.circuit.whole_faithfulness import measure_whole
from circuitmap.config import (
    CorpusConfig,
    MapConfig,
    ModelConfig,
    OptimConfig,
    PatchscopeConfig,
    SAESource,
    Target,
)
from circuitmap.graph.export import load_graph
from circuitmap.mapping.run import run_map
from circuitmap.model.load import load_model
from circuitmap.sae.store import own_sae_dir
from tiny import WORDS, tiny_lm

D_MODEL = 32
A, D, B = 0, 1, 2  # basis vectors; SAE feature i reads +basis[i], feature i + 32 reads -basis[i]
TARGET = Target(3, 5)


def _basis() -> torch.Tensor:
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(D_MODEL, D_MODEL))
    return q.T  # rows: orthonormal directions


def _planted_model(folder: Path) -> None:
    lm = tiny_lm("llama")
    model, basis = lm.model, _basis()
    with torch.no_grad():
        emb = model.model.embed_tokens.weight  # (vocab, d_model)
        emb.copy_(0.5 * torch.randn(emb.shape) @ basis[4:].T @ basis[4:])  # no A, B or D part
        emb += 20 * basis[3]  # a large shared part keeps RMSNorm from saturating on A or B
        vocab = lm.tokenizer.get_vocab()
        emb[vocab["circle"]] += 6 * basis[A]
        emb[vocab["license"]] += 10 * basis[D]
        for block in model.model.layers:
            block.self_attn.o_proj.weight.zero_()  # every position on its own
            block.mlp.down_proj.weight.zero_()
        mlp1 = model.model.layers[1].mlp
        mlp1.gate_proj.weight[0] = basis[A]
        mlp1.up_proj.weight[0] = basis[A]
        mlp1.down_proj.weight[:, 0] = 0.2 * basis[B]  # A at layer 1 writes B
        mlp3 = model.model.layers[3].mlp
        mlp3.gate_proj.weight[TARGET.neuron] = basis[B]
        mlp3.up_proj.weight[TARGET.neuron] = basis[B]  # B drives the neuron
    model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)


def _exact_sae(folder: Path) -> None:
    basis = _basis()
    sae = StandardSAE(StandardSAEConfig(d_in=D_MODEL, d_sae=2 * D_MODEL))
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([basis, -basis]))  # (64, 32)
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    sae.save_model(str(folder))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    import random

    root = tmp_path_factory.mktemp("planted")
    _planted_model(root / "model")
    for layer in (1, 2):
        _exact_sae(own_sae_dir(root / "saes", layer))
    rng = random.Random(0)
    others = [w for w in WORDS if w not in ("circle", "license")]
    texts = []
    for i in range(120):
        words = [rng.choice(others) for _ in range(16)] + ["license"] * 3
        if i % 2 == 0:  # half of the texts fire the neuron, after 8 tokens of context
            words.insert(rng.randrange(8, 17), "circle")
        texts.append(" ".join(words + ["license"]))  # the Mean Vector is mostly D
    (root / "corpus.txt").write_text("\n\n".join(texts))

    def config(**extra):
        return MapConfig(
            targets=[TARGET],
            layers=[1, 2],
            model=ModelConfig(name=str(root / "model")),
            corpus=CorpusConfig(dataset=str(root / "corpus.txt")),
            optim=OptimConfig(steps=5),
            patchscope=PatchscopeConfig(max_new_tokens=2),
            sae=SAESource(sae_dir=str(root / "saes")),
            n_prompts=8,
            n_heldout=8,
            prompt_pool=120,
            controls=4,
            top_k=1,
            **extra,
        )

    return root, config


def _kept(graph, layer):
    return {
        d["index"]
        for _, d in graph.nodes(data=True)
        if d["kind"] == "feature" and d["layer"] == layer
    }


def test_attribution_recovers_the_planted_pair_and_activation_does_not(planted, tmp_path):
    _, config = planted
    run_map(config(), tmp_path / "attr", log=lambda m: None)
    graph = load_graph(tmp_path / "attr" / "graph.json")
    assert A in _kept(graph, 1) and B in _kept(graph, 2)
    assert D not in _kept(graph, 1) | _kept(graph, 2)
    best = max(graph.out_edges("L1.F0", data=True), key=lambda e: e[2]["weight"])
    assert best[1] == "L2.F2"  # the consecutive-layer edge A -> B is A's strongest
    strongest = max(
        (e for e in graph.edges(data=True) if e[2]["kind"] == "feature->feature"),
        key=lambda e: e[2]["weight"],
    )
    assert strongest[:2] == ("L1.F0", "L2.F2")
    # The neuron depends on A and B: removing either takes (almost) all of it.
    assert graph.nodes["L1.F0"]["influence"] > 0.9 and graph.nodes["L2.F2"]["influence"] > 0.9
    assert abs(graph.nodes["L1.E"]["influence"]) < 1e-3  # exact SAEs: nothing in the error
    assert graph.graph["completeness"] > 0.9 and graph.graph["sufficiency"] > 0.9
    # A reads "circle": its label and snippets say where it fires.
    assert graph.nodes["L1.F0"]["label"] == "F0 L1: circle"
    assert all(c.endswith("[[circle]]") for c in graph.nodes["L1.F0"]["contexts"].split(" | "))

    run_map(config(select="activation"), tmp_path / "act", log=lambda m: None)
    report = Selection.load(tmp_path / "act" / "targets" / TARGET.id).layers
    assert report[1].ranked[0] != A and report[2].ranked[0] != B  # the report's top 1 of X
    # The whole circuit is chosen for the target whatever the per-layer choice: A -> B.
    assert load_graph(tmp_path / "act" / "graph.json").nodes["L1.F0"]["in_circuit"]


def test_faithfulness_is_one_with_every_feature_and_zero_with_none(planted):
    root, config = planted
    lm = load_model(ModelConfig(name=str(root / "model")))
    texts = (root / "corpus.txt").read_text().split("\n\n")
    split = top_prompts(lm, texts, [TARGET], n=8, n_heldout=8, n_silent=16)[TARGET.id]
    assert len(split.heldout.texts) == 8 and min(split.heldout.activations) > 0
    run = prompt_run(lm, split.heldout, [1, 2], TARGET)
    sae = StandardSAE.load_from_disk(str(own_sae_dir(root / "saes", 1)))
    dec = decompose(1, sae, token_vectors(lm, split.silent, [1])[1], "silent")
    every = list(range(2 * D_MODEL))
    whole = layer_faithfulness(lm, dec, run, Target(3, 5), every, every, [])
    assert whole.completeness == pytest.approx(1, abs=1e-4)
    assert whole.sufficiency == pytest.approx(1, abs=1e-4)
    none = layer_faithfulness(lm, dec, run, Target(3, 5), [], every, [])
    assert none.completeness == pytest.approx(0, abs=1e-4)
    assert none.sufficiency == pytest.approx(0, abs=1e-4)
    assert whole.error_share == pytest.approx(0, abs=1e-4)


def _measured(planted):
    """The planted model, its prompts and the decompositions of layers 1 and 2."""
    root, _ = planted
    lm = load_model(ModelConfig(name=str(root / "model")))
    texts = (root / "corpus.txt").read_text().split("\n\n")
    split = top_prompts(lm, texts, [TARGET], n=8, n_heldout=8, n_silent=16)[TARGET.id]
    return lm, split, _decompositions(root, lm, split)


def _decompositions(root, lm, split):
    reference = token_vectors(lm, split.silent, [1, 2])
    return {
        layer: decompose(
            layer,
            StandardSAE.load_from_disk(str(own_sae_dir(root / "saes", layer))),
            reference[layer],
            "silent",
        )
        for layer in (1, 2)
    }


def test_the_whole_circuit_is_the_planted_path_and_reproduces_the_target(planted):
    """Chosen jointly over sites 1 and 2 with a budget of two features, the circuit is A -> B;
    every node kept reproduces the target (F 1), none kept gives F 0, and so does the
    complement of the planted path."""
    lm, split, decs = _measured(planted)
    build = prompt_run(lm, split.build, [1, 2], TARGET)
    heldout = prompt_run(lm, split.heldout, [1, 2], TARGET)
    circuit = choose_whole(lm, decs, build, TARGET, [1, 2], budget=2, steps=4)
    assert circuit.features == {1: [A], 2: [B]}
    assert circuit.feature_nodes <= 2  # the budget counts nodes of either position class
    on_build = measure_whole(lm, decs, build, TARGET, circuit, budget=2).circuit
    assert circuit.build_fit == pytest.approx(on_build, abs=1e-4)  # beside the held-out figure
    measured = measure_whole(lm, decs, heldout, TARGET, circuit, budget=2)
    # Above 1 where the other features' silent means shrink the RMSNorm's scale.
    assert 0.9 < measured.circuit < 1.2
    assert measured.no_error == pytest.approx(measured.circuit, abs=1e-4)  # exact SAEs
    assert abs(measured.complement) < 0.05 and abs(measured.random) < 0.05
    every = list(range(2 * D_MODEL))
    whole = _everywhere([1, 2], every, True)
    assert measure_whole(lm, decs, heldout, TARGET, whole, 2).circuit == pytest.approx(1)
    empty = _everywhere([1, 2], [], False)
    assert measure_whole(lm, decs, heldout, TARGET, empty, 2).circuit == pytest.approx(0)


def _everywhere(sites: list[int], features: list[int], error: bool) -> WholeCircuit:
    """A circuit keeping ``features`` and (or not) the error node at every site and position."""
    return WholeCircuit.from_dict(
        {
            "sites": sites,
            "features": {s: features for s in sites},
            "errors": {s: error for s in sites},
            "scores": {s: [0.0] * len(features) for s in sites},
            "seconds": 0,
        }
    )


def test_a_circuit_that_explains_one_layer_alone_scores_nothing_whole(planted):
    """A circuit whose layer-2 part (B) explains layer 2 alone and whose layer-1 part is the
    distractor D: the per-layer figures (each layer edited alone, the others clean) give it
    1 and 0, half credit on average; edited at once it reproduces nothing."""
    lm, split, decs = _measured(planted)
    heldout = prompt_run(lm, split.heldout, [1, 2], TARGET)
    keep = [
        ({1: None, 2: [B]}, {1: True, 2: False}),  # layer 2 alone keeps B: sufficient
        ({1: [D], 2: None}, {1: False, 2: True}),  # layer 1 alone keeps D
        ({1: [D], 2: [B]}, {1: False, 2: False}),  # both at once
        ({1: [], 2: []}, {1: False, 2: False}),
        ({1: None, 2: None}, {1: True, 2: True}),
    ]
    m = masked_target(lm, decs, heldout, TARGET, masks_of(decs, keep)).mean(1)
    layer2, layer1, joint, empty, clean = ((m - m[3]) / (m[4] - m[3])).tolist()
    assert layer2 > 0.9 and abs(layer1) < 0.1
    assert abs(joint) < 0.1


@pytest.mark.parametrize("layer", [1, 2])
def test_the_bounded_sae_optimisation_finds_the_driving_feature_from_every_start(planted, layer):
    """B's axis is what drives the neuron from resid_pre 2, and from resid_pre 1 too (directly
    through the residual stream, more than A through layer 1's MLP; the sign the model's norm
    weights favour). Every start of the default optimisation, from the Mean Vector and from
    corpus vectors, adds that one feature most and settles at 1x to 10x the target's corpus
    maximum (settled at the 2x level)."""
    from circuitmap.method.restarts import restart_layers
    from circuitmap.sae.store import SAEStore

    root, _ = planted
    lm = load_model(ModelConfig(name=str(root / "model")))
    texts = (root / "corpus.txt").read_text().split("\n\n")
    saes = SAEStore.for_model(lm, SAESource(sae_dir=str(root / "saes")), None)
    (report,) = restart_layers(lm, saes, TARGET, [layer], texts, OptimConfig(), n_restarts=4)
    firsts = {top[0] for top in report.top_sets}
    assert len(firsts) == 1 and firsts <= {B, B + D_MODEL}
    assert report.top1_agreement == 1.0 and firsts <= set(report.consensus)
    low, high = report.level_spread
    assert 1.0 <= low and high <= 2.0 + 1e-3

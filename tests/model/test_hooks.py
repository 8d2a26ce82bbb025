import torch

from circuitmap.model.hooks import (
    inject_resid_pre,
    record_mlp_post,
    record_resid_pre,
    run_body,
)


def _ids(lm, text="a circle is the set of all points x"):
    return lm.tokenizer(text, return_tensors="pt")["input_ids"]


def test_injection_replaces_exactly_one_position_at_one_layer(lm):
    ids = _ids(lm)
    layers = list(range(lm.n_layers))
    with record_resid_pre(lm.model, layers) as clean:
        run_body(lm.model, ids)
    vector = torch.randn(lm.d_model) * 10
    pos, layer = 3, 2
    with inject_resid_pre(lm.model, layer, pos, vector), record_resid_pre(lm.model, layers) as hit:
        run_body(lm.model, ids)
    # Recorders registered after the injection see the patched hidden state.
    for earlier in range(layer):
        torch.testing.assert_close(hit[earlier], clean[earlier])
    others = [i for i in range(ids.shape[1]) if i != pos]
    torch.testing.assert_close(hit[layer][0, others], clean[layer][0, others])
    torch.testing.assert_close(hit[layer][0, pos], vector)
    nxt = hit[layer + 1][0]
    torch.testing.assert_close(nxt[:pos], clean[layer + 1][0, :pos])  # causal: earlier unchanged
    assert not torch.allclose(nxt[pos], clean[layer + 1][0, pos])


def test_truncated_forward_matches_full_model(lm):
    ids = _ids(lm)
    with record_mlp_post(lm.model, 2, stop=True) as cut:
        run_body(lm.model, ids)
    with record_mlp_post(lm.model, 2) as full:
        lm.model(input_ids=ids)  # the whole model, logits included
    torch.testing.assert_close(cut[2], full[2])


def test_truncated_forward_never_runs_later_layers(lm):
    ran = []
    handles = [
        layer.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
        for i, layer in enumerate(lm.model.model.layers)
    ]
    with record_mlp_post(lm.model, 1, stop=True):
        run_body(lm.model, _ids(lm))
    for h in handles:
        h.remove()
    assert ran == [0, 1]

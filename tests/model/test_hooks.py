import torch
from reference import inject_resid_pre

from circuitmap.model.hooks import (
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


def test_recorded_forward_records_what_it_is_asked_and_stops_after_the_deepest(lm):
    from circuitmap.model.forward import run_recorded
    from circuitmap.model.hooks import edit_resid_pre

    ids = _ids(lm)
    with record_resid_pre(lm.model, [1, 2]) as resid, record_mlp_post(lm.model, 2) as mlp:
        lm.model(input_ids=ids)  # the whole model
    ran = []
    handles = [
        layer.register_forward_pre_hook(lambda m, a, i=i: ran.append(i))
        for i, layer in enumerate(lm.model.model.layers)
    ]
    out = run_recorded(lm.model, ids, resid=[1, 2], mlp=[2])
    only_resid = run_recorded(lm.model, ids, resid=[1])
    for h in handles:
        h.remove()
    assert ran == [0, 1, 2, 0, 1]  # up to the MLP of layer 2, then up to resid_pre of layer 1
    assert set(out.resid) == {1, 2} and set(out.mlp) == {2} and set(only_resid.resid) == {1}
    torch.testing.assert_close(out.resid[1], resid[1])
    torch.testing.assert_close(out.resid[2], resid[2])
    torch.testing.assert_close(out.mlp[2], mlp[2])
    # An edit is entered before the records, so the record at its layer sees the edited state.
    zero = edit_resid_pre(lm.model, 1, lambda h: torch.zeros_like(h))
    edited = run_recorded(lm.model, ids, resid=[1], edits=[zero])
    assert (edited.resid[1] == 0).all()


def test_last_only_forward_gives_the_last_position_and_its_gradient(lm):
    """The target layer's MLP run at the last position alone gives that position's value and
    the same gradient with respect to every earlier token's resid_pre."""
    from circuitmap.model.forward import run_recorded
    from circuitmap.model.hooks import edit_resid_pre

    ids = _ids(lm)
    values, grads = [], []
    for last_only in (False, True):
        leaf = {}

        def grab(hidden, leaf=leaf):
            leaf["h"] = hidden.detach().requires_grad_(True)
            return leaf["h"]

        with torch.enable_grad():
            out = run_recorded(
                lm.model,
                ids,
                mlp=[2],
                edits=[edit_resid_pre(lm.model, 1, grab)],
                last_only=last_only,
            )
            value = out.mlp[2][:, -1, 5]
            value.sum().backward()
        assert out.mlp[2].shape[1] == (1 if last_only else ids.shape[1])
        values.append(value.detach())
        grads.append(leaf["h"].grad)
    torch.testing.assert_close(values[1], values[0])
    torch.testing.assert_close(grads[1], grads[0])
    assert grads[0][0, :-1].abs().sum() > 0  # earlier tokens reach the target through attention

"""The exported HTML in a real headless Chromium (Debian's chromium, driven by Playwright)."""

import json
import os
import shutil
from pathlib import Path

import networkx as nx
import pytest

from circuitmap.graph.export import circuit_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>window.__pwned = 1</script><img src=x onerror='window.__pwned = 2'>"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: the README's test command installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _graph():
    graph = nx.DiGraph(
        model="tiny",
        targets="L3.N5",
        layers="1,2",
        select="attribution",
        ablation="silent",
        prompts="corpus",
        lr=0.05,
        lr_units="rms",
        steps=5,
        top_k=2,
        n_prompts=2,
        node_threshold=0.8,
        edge_threshold=0.98,
        nodes_total=4,
        edges_total=5,
        edges_hidden=2,
        nodes_hidden=1,
        completeness=0.5,
        sufficiency=0.75,
        heldout_prompts=2,
    )
    graph.add_node("L3.N5", kind="neuron", layer=3, index=5, label="Neuron 5 (L3)", targets="L3.N5")
    for layer, index, text in ((1, 7, "a circle is the set of points"), (2, 9, EVIL)):
        graph.add_node(
            f"L{layer}.F{index}",
            kind="feature",
            layer=layer,
            index=index,
            label=f"Feature {index} (L{layer}) {EVIL if layer == 2 else ''}",
            activation=3.0 * layer,
            influence=0.2 * layer,
            attribution=0.1,
            agreement=0.9,
            p_value=0.01,
            effect_size=3.0,
            ci_low=0.1,
            ci_high=0.3,
            contexts=f"let x be a real [[number]] | {EVIL} [[{EVIL}]]",
            patchscope=text,
            plain_decode=text,
            layer_activation=10.0,
            neuronpedia="",
            sae="tiny",
            targets="L3.N5",
        )
    for u, v, w in (("L1.F7", "L2.F9", 0.5), ("L2.F9", "L3.N5", -0.3), ("L1.F7", "L3.N5", 0.2)):
        graph.add_edge(
            u,
            v,
            kind="k",
            weight=w,
            effect=w,
            targets="L3.N5",
        )
    graph.graph["model"] = f"tiny {EVIL}"
    return graph


def _open(browser, tmp_path, graph, width=1300, height=900):
    """The page of ``graph`` in Chromium, once the explorer has drawn it."""
    page_file = tmp_path / "circuit.html"
    page_file.write_text(circuit_html(graph))
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(page_file.as_uri())
    page.wait_for_function("window.cm && cm.ready")
    assert not errors
    return page


def _at(page, node):
    return page.evaluate(f"cm.at({node!r})")


def _hover(page, node):
    pos = _at(page, node)
    page.mouse.move(pos["x"], pos["y"])


def _click(page, node):
    pos = _at(page, node)
    page.mouse.click(pos["x"], pos["y"])


def _shown(page):
    return page.evaluate("cm.shown()")


def test_circuit_renders_with_tooltips_and_escapes_model_text(browser, tmp_path):
    graph = _graph()
    page = _open(browser, tmp_path, graph)
    canvas = page.locator("#cm-canvas")
    assert canvas.count() == 1 and canvas.bounding_box()["width"] > 500
    assert _shown(page) == sorted(graph.nodes)
    assert page.evaluate("cm.edgesShown()") == graph.number_of_edges()
    # Hover the layer-2 feature: its tooltip shows the decoded text as text.
    _hover(page, "L2.F9")
    page.wait_for_selector("#cm-tip", state="visible")
    tooltip = page.inner_text("#cm-tip")
    assert "Feature 9 (L2)" in tooltip and "<script>window.__pwned = 1</script>" in tooltip
    # The layer heading shows the whole decode on hover, cut on the canvas.
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + _at(page, "L2.F9")["x"] - box["x"] + 2, box["y"] + 14)
    assert page.inner_text("#cm-tip") == f"L2 · {EVIL}"
    # The heading shows once, with the model name as text; nothing injected ran.
    assert page.inner_text("body").count("tiny <script>") == 1
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    assert "\ufffd" not in page.content()
    page.screenshot(path=str(tmp_path / "circuit.png"))


def test_target_menu_shows_one_target_at_a_time(browser, tmp_path):
    """A merged map of two targets: the menu hides what belongs to the other target only."""
    graph = _graph()
    graph.graph["targets"] = "L3.N5,L3.N8"
    graph.add_node("L3.N8", kind="neuron", layer=3, index=8, label="Neuron 8 (L3)")
    graph.nodes["L3.N8"]["targets"] = "L3.N8"
    graph.nodes["L2.F9"]["targets"] = "L3.N5,L3.N8"  # shared by both circuits
    graph.add_edge("L2.F9", "L3.N8", **{**graph.edges["L2.F9", "L3.N5"], "targets": "L3.N8"})
    page = _open(browser, tmp_path, graph)
    edges = "cm.edgesShown()"
    assert len(_shown(page)) == 4
    page.select_option("#target-filter", "L3.N8")
    assert _shown(page) == ["L2.F9", "L3.N8"] and page.evaluate(edges) == 1
    page.select_option("#target-filter", "L3.N5")
    assert _shown(page) == ["L1.F7", "L2.F9", "L3.N5"] and page.evaluate(edges) == 3
    page.select_option("#target-filter", "")
    assert len(_shown(page)) == 4 and page.evaluate(edges) == 4


def test_explorer_panel_slider_and_search(browser, tmp_path):
    page = _open(browser, tmp_path, _graph(), width=1500)
    panel = page.locator("#cm-panel")
    # Clicking a node fills the panel: its figures, where it fires (the token marked), its
    # layer's decode and its edges.
    _click(page, "L1.F7")
    page.wait_for_function("document.getElementById('cm-panel').innerText.includes('influence')")
    text = panel.inner_text()
    assert "Feature 7 (L1)" in text and "kept in bootstrap resamples" in text
    assert page.locator("#cm-panel mark").first.inner_text() == "number"
    assert "a circle is the set of points" in text  # layer 1's Patchscope decode
    assert "outgoing (2)" in text and "incoming (0)" in text
    assert page.evaluate("cm.selected()") == "L1.F7"
    # An edge in the panel leads to the node at its other end.
    panel.locator("button.cm-link", has_text="Neuron 5 (L3)").click()
    assert panel.locator("h3").inner_text() == "Neuron 5 (L3)"
    assert page.evaluate("cm.selected()") == "L3.N5"
    # The edge slider hides the weak edges; the influence slider hides weak features.
    page.locator("#cm-edge-slider").fill("70")  # 0.7 x the largest |weight| (0.5): 0.35
    assert page.evaluate("cm.edgesShown()") == 1  # the 0.2 and -0.3 edges are hidden
    page.locator("#cm-edge-slider").fill("0")
    assert page.evaluate("cm.edgesShown()") == 3
    page.locator("#cm-node-slider").fill("80")  # L1.F7's influence 0.2 < 0.8 x 0.4
    assert "L1.F7" not in _shown(page)
    page.locator("#cm-node-slider").fill("0")
    # Search by a word of a label selects the node.
    page.locator("#cm-search").fill("feature 9")
    page.locator("#cm-search").press("Enter")
    assert page.evaluate("cm.selected()") == "L2.F9"
    # Its snippet holds the injected markup as text: nothing ran, no image was made.
    assert EVIL in panel.inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    # Hovers and slider moves are timed in the page (the benchmark reads them).
    _hover(page, "L1.F7")
    kinds = {t["what"] for t in page.evaluate("cm.timings")}
    assert {"hover", "slider"} <= kinds <= {"hover", "leave", "slider"}


def _layered(layers=4, per_layer=6, circuit=None):
    """A map of ``layers`` layers of ``per_layer`` features and an error node each, every node
    feeding every node of the next layer; ``circuit``: ids marked ``in_circuit`` (others False)."""
    graph = _graph()
    graph.remove_nodes_from([n for n in list(graph) if n != "L3.N5"])
    target = graph.nodes["L3.N5"]
    target["layer"] = layers
    previous = []
    for layer in range(layers):
        here = []
        for index in [*range(per_layer), -1]:
            node = f"L{layer}.E" if index < 0 else f"L{layer}.F{index}"
            graph.add_node(
                node,
                kind="error" if index < 0 else "feature",
                layer=layer,
                index=index,
                label=f"Error L{layer}" if index < 0 else f"F{index} L{layer}: word{index}",
                influence=0.3 / (index + 2),
                targets="L3.N5",
            )
            here.append(node)
        for u in previous:
            for v in here:
                graph.add_edge(u, v, kind="k", weight=0.1, effect=0.1, targets="L3.N5")
        previous = here
    for u in previous:
        graph.add_edge(u, "L3.N5", kind="k", weight=0.2, effect=0.2, targets="L3.N5")
    if circuit is not None:
        for node, d in graph.nodes(data=True):
            d["in_circuit"] = node in circuit
    return graph


CIRCUIT = {"L0.F0", "L0.F1", "L1.F0", "L1.E", "L2.F2", "L2.F0", "L3.F1", "L3.E", "L3.N5"}


def test_first_view_is_the_circuit_filling_the_canvas_with_readable_labels(browser, tmp_path):
    page = _open(browser, tmp_path, _layered(circuit=CIRCUIT), width=1600, height=900)
    assert _shown(page) == sorted(CIRCUIT)
    labels = page.evaluate("cm.labels()")
    assert {label["id"] for label in labels} == CIRCUIT
    assert min(label["px"] for label in labels) >= 12
    texts = {label["id"]: label["text"] for label in labels}
    assert texts["L0.F0"] == "F0 word0" and texts["L1.E"] == "error"  # the column names the layer
    box = page.evaluate("cm.bbox()")
    covered = (box["x1"] - box["x0"]) * (box["y1"] - box["y0"])
    assert covered >= 0.7 * box["width"] * box["height"]
    page.screenshot(path=str(tmp_path / "first_view.png"))
    # The rest of the map is behind the toggle; the panel says whether a node is in the circuit.
    toggle = page.locator("#cm-outside")
    assert "show the 20 nodes outside the circuit" in page.inner_text("#cm-controls")
    toggle.check()
    assert len(_shown(page)) == 4 * 7 + 1
    _click(page, "L2.F5")
    assert "outside the circuit" in page.inner_text("#cm-panel")
    toggle.uncheck()
    assert _shown(page) == sorted(CIRCUIT)


def test_a_circuit_of_one_feature_a_layer_still_fills_the_canvas(browser, tmp_path):
    chain = {"L0.F0", "L1.F0", "L2.F0", "L3.F0", "L3.N5"}
    page = _open(browser, tmp_path, _layered(circuit=chain), width=1600, height=900)
    assert _shown(page) == sorted(chain)
    box = page.evaluate("cm.bbox()")
    covered = (box["x1"] - box["x0"]) * (box["y1"] - box["y0"])
    assert covered >= 0.7 * box["width"] * box["height"]


def test_without_a_circuit_mark_the_first_view_is_the_whole_exported_graph(browser, tmp_path):
    graph = _layered(layers=2, per_layer=3)
    page = _open(browser, tmp_path, graph, width=1600, height=900)
    assert _shown(page) == sorted(graph.nodes)
    assert page.locator("#cm-outside").count() == 0
    # An error node's panel gives its share; a figure not measured reads "–".
    _click(page, "L1.E")
    text = page.inner_text("#cm-panel")
    assert "influence (share of the target)\t0.300" in text and "attribution\t–" in text


def test_a_supernode_collapses_and_expands(browser, tmp_path):
    graph = _layered(layers=3, per_layer=4)
    members = ["L1.F0", "L1.F1", "L1.F2"]
    graph.graph["supernodes"] = json.dumps([["L1 word", *members]])
    page = _open(browser, tmp_path, graph, width=1600)
    panel = page.locator("#cm-panel")
    _click(page, "L1.F1")
    assert "supernode L1 word" in panel.inner_text()
    panel.locator("button", has_text="collapse").click()
    shown = _shown(page)
    assert "S0" in shown and not set(members) & set(shown)
    assert "L1 word (3)" in [label["text"] for label in page.evaluate("cm.labels()")]
    # The collapsed supernode's edges go to it; clicking it lists its members.
    _click(page, "S0")
    assert [b.inner_text() for b in panel.locator("button.cm-link").all()] == [
        "F0 L1: word0",
        "F1 L1: word1",
        "F2 L1: word2",
    ]
    panel.locator("button", has_text="expand").click()
    assert _shown(page) == sorted(graph.nodes)
    # The checkbox collapses every supernode at once.
    page.locator("#cm-group").check()
    assert "S0" in _shown(page)


def test_panel_shows_a_nodes_dashboard(browser, tmp_path):
    graph = _graph()
    graph.graph["dashboard_texts"] = 64
    graph.nodes["L1.F7"].update(
        corpus_contexts=[
            {"before": "the area of a", "token": " circle", "after": " is", "activation": 4.5},
            {"before": "a unit", "token": EVIL, "after": "", "activation": 2.0},
        ],
        activation_histogram={
            "edges": [0.0, 1.0, 2.0, 3.0],
            "counts": [5, 2, 1],
            "active": 8,
            "tokens": 4096,
        },
        promoted_tokens=[{"token": " radius", "logit": 3.1}, {"token": " 円", "logit": 2.0}],
    )
    graph.nodes["L3.N5"]["top_prompts"] = [
        {"before": "let", "token": " x", "after": " be", "activation": 9.0}
    ]
    page = _open(browser, tmp_path, graph, width=1600)
    panel = page.locator("#cm-panel")
    _click(page, "L1.F7")
    text = panel.inner_text()
    assert "top activations over 64 corpus texts" in text
    assert [m.inner_text() for m in panel.locator("mark").all()][:2] == [" circle", EVIL]
    assert panel.locator(".cm-bar").count() == 3
    assert "active on 8 of 4096 tokens" in text
    assert [t.inner_text() for t in panel.locator(".cm-token").all()] == [" radius", " 円"]
    assert "causal decode (Patchscope of the feature)\n–" in text  # not measured
    _click(page, "L3.N5")
    assert "prompts where it fires most" in panel.inner_text()
    assert panel.locator("mark").first.inner_text() == " x"
    assert page.evaluate("window.__pwned") is None and "\ufffd" not in page.content()


def test_show_renders_the_explorer_inline_offline(browser, tmp_path):
    """``circuitmap.show(run)`` in a notebook: the page in a sandboxed iframe, no network."""
    import circuitmap

    run = Path(__file__).parents[2] / "graphs" / "gemma-3-270m-L12-N1742"
    shown = circuitmap.show(run, height=700)
    cell = tmp_path / "cell.html"
    cell.write_text(f"<html><body>{shown._repr_html_()}</body></html>")
    context = browser.new_context(offline=True, viewport={"width": 1600, "height": 900})
    requests = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    page.goto(cell.as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("#cm-canvas").wait_for()
    inner = page.frames[1]
    inner.wait_for_function("window.cm && cm.ready")
    circuit = [n for n, d in shown.graph.nodes(data=True) if d.get("in_circuit")]
    assert sorted(inner.evaluate("cm.shown()")) == sorted(circuit)  # the first view: the circuit
    assert "L12.N1742" in frame.locator("#cm-head").inner_text()
    assert requests == [cell.as_uri()]
    context.close()

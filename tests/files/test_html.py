"""The exported HTML in a real headless Chromium (Debian's chromium, driven by Playwright)."""

import os
import shutil

import networkx as nx
import pytest

from circuitmap.files.export import circuit_html

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


def _open(browser, tmp_path, graph, width=1300):
    """The page of ``graph`` in Chromium, once vis.js has drawn it."""
    page_file = tmp_path / "circuit.html"
    page_file.write_text(circuit_html(graph))
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(page_file.as_uri())
    page.wait_for_function("typeof network !== 'undefined'")
    return page


def test_circuit_renders_with_tooltips_and_escapes_model_text(browser, tmp_path):
    graph = _graph()
    page = _open(browser, tmp_path, graph)
    canvas = page.locator("#mynetwork canvas")
    assert canvas.count() == 1 and canvas.bounding_box()["width"] > 500
    graph_nodes = "nodes.get({filter: n => !n.id.startsWith('layer:')}).length"
    assert page.evaluate(graph_nodes) == graph.number_of_nodes()
    assert page.evaluate("edges.length") == graph.number_of_edges()
    # Each layer is headed once by its Patchscope decode.
    assert page.evaluate("nodes.get('layer:2').label").startswith("L2\n<script>")
    # Hover the layer-2 feature: its tooltip shows the decoded text as text.
    box = page.evaluate("document.getElementById('mynetwork').getBoundingClientRect().toJSON()")
    pos = page.evaluate("network.canvasToDOM(network.getPositions(['L2.F9'])['L2.F9'])")
    page.mouse.move(box["x"] + pos["x"], box["y"] + pos["y"])
    page.wait_for_selector(".vis-tooltip", state="visible")
    tooltip = page.inner_text(".vis-tooltip")
    assert "Feature 9 (L2)" in tooltip and "<script>window.__pwned = 1</script>" in tooltip
    # The heading shows once, with the model name as text; nothing injected ran.
    assert page.inner_text("body").count("tiny <script>") == 1
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
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

    def shown(kind):
        visible = f"{kind}.get({{filter: i => !i.hidden}}).map(i => i.id)"
        return sorted(i for i in page.evaluate(visible) if not i.startswith("layer:"))

    assert len(shown("nodes")) == 4
    page.select_option("#target-filter", "L3.N8")
    assert shown("nodes") == ["L2.F9", "L3.N8"] and len(shown("edges")) == 1
    page.select_option("#target-filter", "L3.N5")
    assert shown("nodes") == ["L1.F7", "L2.F9", "L3.N5"] and len(shown("edges")) == 3
    page.select_option("#target-filter", "")
    assert len(shown("nodes")) == 4 and len(shown("edges")) == 4


def _click(page, node):
    box = page.evaluate("document.getElementById('mynetwork').getBoundingClientRect().toJSON()")
    pos = page.evaluate(f"network.canvasToDOM(network.getPositions(['{node}'])['{node}'])")
    page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])


def test_explorer_panel_slider_and_search(browser, tmp_path):
    page = _open(browser, tmp_path, _graph(), width=1500)
    panel = page.locator("#cm-panel")
    # Clicking a node fills the panel: its figures, where it fires (the token marked), its
    # layer's decode and its edges; other nodes off its paths to the target are dimmed.
    _click(page, "L1.F7")
    page.wait_for_function("document.getElementById('cm-panel').innerText.includes('influence')")
    text = panel.inner_text()
    assert "Feature 7 (L1)" in text and "kept in bootstrap resamples" in text
    assert page.locator("#cm-panel mark").first.inner_text() == "number"
    assert "a circle is the set of points" in text  # layer 1's Patchscope decode
    assert "outgoing (2)" in text and "incoming (0)" in text
    # An edge in the panel leads to the node at its other end.
    panel.locator("button.cm-link", has_text="Neuron 5 (L3)").click()
    assert panel.locator("h3").inner_text() == "Neuron 5 (L3)"
    assert page.evaluate("network.getSelectedNodes()") == ["L3.N5"]

    # The edge slider hides the weak edges; the influence slider hides weak features.
    def hidden(kind):
        return page.evaluate(f"{kind}.get({{filter: i => i.hidden}}).length")

    page.locator("#cm-edge-slider").fill("70")  # 0.7 x the largest |weight| (0.5): 0.35
    assert hidden("edges") == 2  # the 0.2 and -0.3 edges
    page.locator("#cm-edge-slider").fill("0")
    assert hidden("edges") == 0
    page.locator("#cm-node-slider").fill("80")  # L1.F7's influence 0.2 < 0.8 x 0.4
    assert page.evaluate("nodes.get('L1.F7').hidden") is True
    page.locator("#cm-node-slider").fill("0")
    # Search by a word of a label selects the node.
    page.locator("#cm-search").fill("feature 9")
    page.locator("#cm-search").press("Enter")
    assert page.evaluate("network.getSelectedNodes()") == ["L2.F9"]
    # Its snippet holds the injected markup as text: nothing ran, no image was made.
    assert EVIL in panel.inner_text()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0

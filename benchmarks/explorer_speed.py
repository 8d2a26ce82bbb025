"""How fast the explorer answers a hover and a slider move on a big map, in headless Chromium.

    python benchmarks/explorer_speed.py [--graph graphs/gemma-3-270m-L12-math/graph.json]
        [--hovers 40] [--moves 20] [--out benchmarks/results/explorer_speed.md]

The graph is exported with every node and edge (node and edge thresholds 1), grouped into
supernodes, and opened at 1600x900. Two views are timed: the whole export shown, and a circuit
view where the nodes that the run's own thresholds keep are marked ``in_circuit`` (the first view
then draws those, the rest behind the toggle). Each time is measured inside the page
(``performance.now()`` around the event handler, drawing included: ``cm.timings``): a hover is the
pointer entering a node (its paths highlighted), a slider move one ``input`` event of the
influence or the edge-weight slider. Prints a table and writes it, with the command and the
commit, to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from circuitmap.files.storage import read_json
from circuitmap.graph.explorer import circuit_html
from circuitmap.graph.export import load_graph
from circuitmap.graph.prune import prune
from circuitmap.graph.supernodes import add_supernodes

ROOT = Path(__file__).parents[1]


def _graphs(path: Path) -> dict[str, object]:
    """The whole export, and the same with the run's pruned nodes marked as the circuit."""
    graph = add_supernodes(prune(load_graph(path), 1.0, 1.0))
    config = read_json(path.parent / "config.json")
    kept = prune(graph, config.get("node_threshold", 0.5), config.get("edge_threshold", 0.8))
    marked = graph.copy()
    for node, d in marked.nodes(data=True):
        d["in_circuit"] = node in kept
    return {"whole export": graph, "circuit view, then all shown": marked}


def _stats(values: list[float]) -> str:
    if not values:
        return "– | – | –"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} | {p95:.1f} | {ordered[-1]:.1f}"


def _time_view(page, hovers: int, moves: int) -> tuple[list[float], list[float], int, int]:
    """Hover ``hovers`` drawn nodes and move both sliders ``moves`` times; the page's timings."""
    page.evaluate("cm.timings.length = 0")
    ids = page.evaluate("cm.shown()")
    step = max(1, len(ids) // hovers)
    away = page.evaluate("(() => { const r = cm.bbox(); return [r.width - 3, 3]; })()")
    box = page.locator("#cm-canvas").bounding_box()
    for node in ids[::step][:hovers]:
        at = page.evaluate(f"cm.at({node!r})")
        page.mouse.move(at["x"], at["y"])
        page.mouse.move(box["x"] + away[0], box["y"] + away[1])
    drawn = (len(ids), page.evaluate("cm.edgesShown()"))
    for slider in ("#cm-edge-slider", "#cm-node-slider"):
        for value in [*range(1, moves // 2 + 1), *range(moves // 2, -1, -1)]:
            page.eval_on_selector(
                slider, f"s => {{ s.value = {value}; s.dispatchEvent(new Event('input')); }}"
            )
    timings = page.evaluate("cm.timings")
    hover = [t["ms"] for t in timings if t["what"] == "hover"]  # entering a node
    slide = [t["ms"] for t in timings if t["what"] == "slider"]
    return hover, slide, *drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--graph", type=Path, default=ROOT / "graphs/gemma-3-270m-L12-math/graph.json"
    )
    parser.add_argument("--hovers", type=int, default=40)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/explorer_speed.md")
    args = parser.parse_args()
    args.graph = args.graph.resolve()
    if args.graph.is_relative_to(ROOT):
        args.graph = args.graph.relative_to(ROOT)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    rows = []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        for name, graph in _graphs(ROOT / args.graph).items():
            page_file = Path(tmp) / "circuit.html"
            page_file.write_text(circuit_html(graph))
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            start = time.perf_counter()
            page.goto(page_file.as_uri())
            page.wait_for_function("window.cm && cm.ready", timeout=120_000)
            load = time.perf_counter() - start
            views = [name.split(",")[0]]
            results = [_time_view(page, args.hovers, args.moves)]
            if page.locator("#cm-outside").count():
                page.locator("#cm-outside").check()
                views.append("all shown (toggle on)")
                results.append(_time_view(page, args.hovers, args.moves))
            for view, (hover, slide, nodes, edges) in zip(views, results, strict=True):
                rows.append(
                    f"| {view} | {nodes} | {edges} | {_stats(hover)} | {_stats(slide)} | "
                    f"{load:.1f} |"
                )
            page.close()
        version = browser.version
        browser.close()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    table = "\n".join(
        [
            f"# Explorer speed: {args.graph}",
            "",
            f"`python {' '.join(sys.argv)}` at commit {commit}, Chromium {version} headless "
            f"(--disable-gpu), {os.cpu_count()} CPU cores, {platform.machine()}, "
            f"{time.strftime('%Y-%m-%d')}. Times in ms, measured in the page.",
            "",
            "| view | nodes drawn | edges drawn | hover median | hover p95 | hover max "
            "| slider median | slider p95 | slider max | page load s |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()

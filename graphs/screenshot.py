"""Screenshot a circuit.html as headless Chromium renders it, its most influential feature
clicked (needs chromium and playwright).

python graphs/screenshot.py graphs/<run>/circuit.html graphs/<run>.png [--target L12.N1742]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--target", help="with several targets: show this one's circuit")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(args.html.resolve().as_uri())
        page.wait_for_function("typeof network !== 'undefined'")
        if args.target:
            page.select_option("#target-filter", args.target)
        page.evaluate("network.fit()")
        page.wait_for_timeout(500)
        # Click the most influential feature, so the picture shows its panel and its paths.
        best = page.evaluate(
            "(() => { const d = JSON.parse(document.getElementById('cm-data').textContent).nodes;"
            " const ids = Object.keys(d)"
            ".filter(i => d[i].kind === 'feature' && !nodes.get(i).hidden);"
            " ids.sort((a, b) => Math.abs(d[b].influence) - Math.abs(d[a].influence));"
            " return ids[0]; })()"
        )
        if best:
            box = page.evaluate(
                "document.getElementById('mynetwork').getBoundingClientRect().toJSON()"
            )
            pos = page.evaluate(f"network.canvasToDOM(network.getPositions(['{best}'])['{best}'])")
            page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
            page.wait_for_timeout(500)
        page.screenshot(path=str(args.png), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()

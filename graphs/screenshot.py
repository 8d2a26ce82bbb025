"""Screenshot a circuit.html as headless Chromium renders it, its most influential feature
clicked, and with ``--first-view`` also the page as it opens (needs chromium and playwright).

python graphs/screenshot.py graphs/<run>/circuit.html graphs/<run>.png [--target L12.N1742]
    [--first-view graphs/<run>-first-view.png]
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
    parser.add_argument("--first-view", type=Path, help="also the page as it opens, here")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(args.html.resolve().as_uri())
        page.wait_for_function("window.cm && cm.ready")
        if args.target:
            page.select_option("#target-filter", args.target)
        if args.first_view:
            page.screenshot(path=str(args.first_view), full_page=True)
        # Click the most influential feature, so the picture shows its panel and its paths.
        best = page.evaluate(
            "(() => { const d = JSON.parse(document.getElementById('cm-data').textContent).nodes;"
            " const shown = new Set(cm.shown());"
            " const f = d.filter(n => n.kind === 'feature' && shown.has(n.id));"
            " f.sort((a, b) => Math.abs(b.influence) - Math.abs(a.influence));"
            " return f.length ? f[0].id : null; })()"
        )
        if best:
            at = page.evaluate(f"cm.at({best!r})")
            page.mouse.click(at["x"], at["y"])
            page.wait_for_timeout(300)
        page.screenshot(path=str(args.png), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()

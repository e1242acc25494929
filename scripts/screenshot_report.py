"""Screenshot a report.html in headless Chromium (for the README).

    .venv/bin/python scripts/screenshot_report.py results/demo/report.html docs/report.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def main(html: str, png: str, height: int = 1400) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(Path(html).resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=png, full_page=False)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
